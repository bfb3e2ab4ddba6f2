/**
 * `paciofs serve`: open every volume with the same stack as a local mount,
 * serve them over TLS until SIGINT/SIGTERM, then drain the calls, end the
 * sessions (releasing and recording their open files), commit and close.
 */
import {StopSignals} from './stop.js'
import {limitMallocArenas, trimMalloc} from '../fuse/mount.js'
import path from 'node:path'
import {openAll} from '../server/served.js'
import {tuneMallocForStreams} from '../server/malloc.js'
import {startServer} from '../server/server.js'
import {loadOrCreateServerTls} from '../server/tls.js'
import {showFingerprint} from '../remote/auth.js'
import {configDir} from './identity.js'
import {PacioError} from '../errors.js'
import type {AcceptPolicy, ReplicaHost} from '../replica/host.js'
import {primaryHost, synchronousVolume, type PrimaryHost} from '../replica/primary.js'

export interface ServeRequest {
  volumes: string[]
  host: string
  port: number
  /** the data channel's port (0 or undefined: any free one) */
  dataPort?: number
  identity?: string
  /** where the server keeps its TLS key and certificate (default: CONFIG/server) */
  stateDir?: string
  maxHandles?: number
  /** how this server votes on servers that ask to join its volumes (default manual) */
  accept?: AcceptPolicy
  /** fsync/sync return only once this many replica servers have applied the records (default 0) */
  syncReplicas?: number
  onReady?(info: ServeInfo): void
  onEvent?(message: string): void
}

export interface ServeInfo {
  address: string
  dataPort: number
  fingerprint: string
  tlsCreated: boolean
  volumes: Array<{name: string; dir: string; id: string; created: boolean; members: number}>
}

export interface ServeSummary {
  reason: string
  records: number
}

export async function runServe(req: ServeRequest): Promise<ServeSummary> {
  if (req.volumes.length === 0) throw new PacioError('EINPUT', 'give at least one --volume DIR')
  limitMallocArenas() // as a mount does: the server's threads (thread pool, ledger writer) mostly wait on the kernel
  const stopTrimming = trimMalloc()
  tuneMallocForStreams() // before the streams start: see server/malloc.ts
  const stop = new StopSignals()
  try {
    const tls = await loadOrCreateServerTls(req.stateDir ?? path.join(configDir(), 'server'))
    const volumes = await openAll(req.volumes, {identity: req.identity, onEvent: req.onEvent})
    let records = 0
    const hosts = new Map<string, ReplicaHost>()
    const primaries: PrimaryHost[] = []
    try {
      for (const v of volumes.values()) {
        if (v.stack.ledger.driver !== 'embedded') continue // MultiChain volumes are replicated by MultiChain nodes
        const h = await primaryHost(v, req.accept ?? 'manual')
        primaries.push(h)
        hosts.set(v.name, h)
        if ((req.syncReplicas ?? 0) > 0) v.volume = synchronousVolume(v.volume, h, req.syncReplicas!)
      }

      const server = await startServer({host: req.host, port: req.port, dataPort: req.dataPort, tls, volumes, replicaHosts: hosts, maxHandles: req.maxHandles ?? 1024, onEvent: req.onEvent})
      try {
        if (stop.reason === undefined) {
          req.onReady?.({
            address: `${req.host}:${server.port}`,
            dataPort: server.dataPort,
            fingerprint: showFingerprint(tls.fingerprint),
            tlsCreated: tls.created,
            volumes: [...volumes.values()].map(v => ({name: v.name, dir: v.stack.layout.root, id: v.stack.meta.id, created: v.stack.created, members: v.members.list().length})),
          })
          await stop.until()
        }
      } finally {
        await server.stop()
      }
    } finally {
      for (const h of primaries) await h.close()
      for (const v of volumes.values()) {
        records += v.stack.recordCount()
        await v.stack.close()
      }
    }

    return {reason: stop.reason ?? 'stopped', records}
  } finally {
    stop.dispose()
    stopTrimming()
  }
}
