/**
 * `paciofs mount MNT --server HOST:PORT --volume NAME`: the same FUSE adapter
 * as a local mount, with the Volume API served over the network underneath.
 * The kernel caches attributes and entries for one second (libfuse's
 * attr_timeout / entry_timeout), so mounts of one volume see each other's
 * changes within about a second. Serves until SIGINT/SIGTERM or an external
 * unmount; a server that goes away makes operations fail (ENOTCONN / EIO)
 * until it is back.
 */
import {StopSignals} from './stop.js'
import path from 'node:path'
import {tuneMallocForStreams} from '../server/malloc.js'
import {widenReadAhead} from './readahead.js'
import {checkMountpoint, limitMallocArenas, mountVolume, trimMalloc} from '../fuse/mount.js'
import {Connection} from '../remote/connection.js'
import {RemoteVolume} from '../remote/remote-volume.js'
import {configDir, loadOrCreateIdentity} from './identity.js'

export interface RemoteMountRequest {
  mountpoint: string
  server: string
  volume: string
  identity?: string
  trustNewServerKey?: boolean
  debug?: boolean
  onReady?(info: RemoteMountedInfo): void
  onInternalError?(op: string, error: unknown): void
  onEvent?(message: string): void
}

export interface RemoteMountedInfo {
  mountpoint: string
  server: string
  volume: string
  volumeId: string
  member: string
  fingerprint: string
  pinnedNow: boolean
}

export function knownServersFile(): string {
  return path.join(configDir(), 'known-servers.json')
}

/** Opens a session with a server (pinning its key); the caller closes the connection. */
export async function connectRemote(req: {server: string; volume: string; identity?: string; trustNewServerKey?: boolean; onEvent?(m: string): void}) {
  const identity = loadOrCreateIdentity(req.identity)
  const conn = new Connection({server: req.server, volume: req.volume, identity, knownServersFile: knownServersFile(),
    trustNewServerKey: req.trustNewServerKey, onEvent: req.onEvent})
  try {
    const pin = await conn.connect()
    return {conn, identity, ...pin}
  } catch (error) {
    conn.close()
    throw error
  }
}

export async function runRemoteMount(req: RemoteMountRequest): Promise<{reason: string} & RemoteMountedInfo> {
  limitMallocArenas() // before the threads that serve the mount start
  const stopTrimming = trimMalloc()
  tuneMallocForStreams() // 1 MiB frames of the data channel come from the heap, not fresh mappings (server/malloc.ts)
  const stop = new StopSignals()
  try {
    checkMountpoint(req.mountpoint)
    const {conn, identity, fingerprint, pinnedNow} = await connectRemote(req)
    const volume = new RemoteVolume(conn)
    let mounted
    try {
      mounted = await mountVolume(volume, req.mountpoint, {fsname: `paciofs:${req.server.split(',')[0]}/${req.volume}`, debug: req.debug, onInternalError: req.onInternalError, maxWrite: conn.maxChunk})
    } catch (error) {
      conn.close()
      throw error
    }

    widenReadAhead(mounted.mountpoint)
    const info: RemoteMountedInfo = {mountpoint: mounted.mountpoint, server: req.server, volume: req.volume, volumeId: conn.volumeId, member: identity.pid, fingerprint, pinnedNow}
    if (stop.reason === undefined) {
      req.onReady?.(info)
      await stop.until(mounted.mountpoint)
    }

    await mounted.unmount()
    await volume.close()
    return {...info, reason: stop.reason ?? 'stopped'}
  } finally {
    stop.dispose()
    stopTrimming()
  }
}
