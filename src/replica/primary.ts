/**
 * The primary's side of replication for one served volume: its ServerSet
 * (from the journal), membership decisions recorded through the volume's
 * recorder and committed before they count, and the blocks its ledger
 * commits, announced to Follow streams as they come.
 */
import {EventEmitter} from 'node:events'
import {loadIdentity} from '../crypto/sign.js'
import {PacioError} from '../errors.js'
import type {Served} from '../server/served.js'
import {actingAs} from '../volume/acting.js'
import {Journal} from '../volume/journal.js'
import type {FsRecord, Volume} from '../volume/types.js'
import {errnoError} from '../remote/wire.js'
import type {AcceptPolicy, ReplicaHost} from './host.js'
import {loadServers, preimageOf} from './journal-view.js'
import {ServerSet} from './servers.js'

export interface PrimaryHost extends ReplicaHost {
  /** Resolves once `n` accepted replicas have applied the ledger up to its head as it is now; EIO after timeoutMs. */
  replicated(n: number, timeoutMs: number): Promise<void>
  close(): Promise<void>
}

/**
 * The served volume with fsync and sync acknowledged only once `n` replicas
 * have applied what they committed (serve --sync-replicas): an acknowledged
 * write then survives the loss of the primary.
 */
export function synchronousVolume(volume: Volume, host: PrimaryHost, n: number, timeoutMs = 15_000): Volume {
  return new Proxy(volume, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver)
      if ((prop !== 'fsync' && prop !== 'sync') || typeof v !== 'function') return typeof v === 'function' ? v.bind(target) : v
      return async (...args: unknown[]) => {
        await (v as (...a: unknown[]) => Promise<void>).apply(target, args)
        await host.replicated(n, timeoutMs)
      }
    },
  })
}

export async function primaryHost(served: Served, accept: AcceptPolicy): Promise<PrimaryHost> {
  const {stack} = served
  if (stack.ledger.driver !== 'embedded') {
    throw new PacioError('EINPUT', `volume ${served.name} records on ${stack.ledger.driver}: replica servers follow the embedded ledger (a MultiChain volume is replicated by running MultiChain nodes)`)
  }

  const serverKey = loadIdentity(stack.layout.nodeKey).pid
  const journal = Journal.open(stack.layout.journal, stack.meta.id, {readonly: true})
  const servers = new ServerSet(serverKey, stack.meta.id, stack.meta.replication?.votes ?? 1)
  loadServers(journal, servers)
  const blocks = new EventEmitter()
  blocks.setMaxListeners(0)
  let head = (await stack.ledger.head()).epoch
  const unfollow = stack.ledger.follow(head + 1, b => {
    head = b.epoch
    blocks.emit('block', b.epoch)
  })
  const applied = new Map<string, {epoch: number; seen: number}>()
  const progress = new EventEmitter()
  progress.setMaxListeners(0)
  const caller = {uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, pid: process.pid}
  return {
    name: served.name,
    volumeId: stack.meta.id,
    role: 'primary',
    accept,
    serverKey,
    read: from => stack.ledger.read(from),
    checkpoint: epoch => stack.ledger.checkpoint(epoch),
    headEpoch: () => head,
    blocks,
    preimage: hash => preimageOf(journal, hash),
    history: stack.history,
    root: stack.layout.root,
    isMember: k => served.members.has(k),
    members: () => served.members.list(),
    servers,
    applied,
    appliedChanged: () => progress.emit('applied'),
    async replicated(n, timeoutMs) {
      const epoch = (await stack.ledger.head()).epoch
      const enough = () => servers.accepted().filter(e => (applied.get(e.key)?.epoch ?? -1) >= epoch).length >= n
      if (enough()) return
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => {
          progress.off('applied', check)
          reject(errnoError('EIO', `fewer than ${n} replica server(s) confirmed epoch ${epoch} within ${timeoutMs} ms (serve --sync-replicas)`))
        }, timeoutMs)
        function check() {
          if (!enough()) return
          clearTimeout(t)
          progress.off('applied', check)
          resolve()
        }

        progress.on('applied', check)
      })
    },
    async record(body, by) {
      const r: FsRecord = await actingAs(by, async () => {
        await stack.recorder.record(body, caller)
        return {v: 1, ...body, who: {...caller, member: by}, at: Date.now()} as FsRecord
      })
      await stack.recorder.committed()
      servers.apply(r)
    },
    async close() {
      unfollow()
      await journal.close()
    },
  }
}
