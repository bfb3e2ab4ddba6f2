/**
 * `paciofs join HOST:PORT --volume NAME --dir DIR`: this server asks the
 * primary to join the volume's group (a signed JOIN on the ledger), waits
 * for the vote, then follows the ledger into DIR and serves it: read-only
 * mounts for the volume's members, and blocks, records and content to the
 * other replicas. Runs until SIGINT/SIGTERM; run it again on the same DIR to
 * resume where it stopped (also after kill -9).
 */
import {EventEmitter} from 'node:events'
import path from 'node:path'
import * as grpc from '@grpc/grpc-js'
import {PacioError} from '../errors.js'
import {HistoryStore} from '../history/store.js'
import {readTimeline} from '../history/timeline.js'
import {HistoryView} from '../history/view.js'
import {EmbeddedLedger} from '../ledger/embedded/index.js'
import {MirrorStore} from '../ledger/embedded/mirror.js'
import {showFingerprint} from '../remote/auth.js'
import {parseServer} from '../remote/connection.js'
import {fetchServerCert, pinServer} from '../remote/known-servers.js'
import {Follower} from '../replica/follower.js'
import type {AcceptPolicy, ReplicaHost} from '../replica/host.js'
import {loadMembers, loadServers, preimageOf} from '../replica/journal-view.js'
import {Peer, PeerPool} from '../replica/peers.js'
import {ReadOnlyVolume} from '../replica/readonly-volume.js'
import {openReplicaDir} from '../replica/replica-volume.js'
import {ServerSet} from '../replica/servers.js'
import {signJoin} from '../replica/statements.js'
import {blockFromMsg, unary, type BlockMsg} from '../replica/wire.js'
import {PathGuard} from '../server/guard.js'
import type {MemberSet, ServedVolume} from '../server/served.js'
import {tuneMallocForStreams} from '../server/malloc.js'
import {startServer} from '../server/server.js'
import {loadOrCreateServerTls} from '../server/tls.js'
import {Journal} from '../volume/journal.js'
import {lockVolume} from '../volume/layout.js'
import {LocalVolume} from '../volume/local-volume.js'
import {Recorder} from '../volume/recorder.js'
import {configDir, loadOrCreateIdentity} from './identity.js'
import {knownServersFile} from './remote-mount.js'
import {StopSignals} from './stop.js'

export interface JoinRequest {
  primary: string
  volume: string
  dir: string
  identity?: string
  accept: AcceptPolicy
  host: string
  port: number
  /** the address other servers reach this one at (default host:port as bound) */
  advertise?: string
  stateDir?: string
  trustNewServerKey?: boolean
  onReady?(info: JoinInfo): void
  onEvent?(message: string): void
}

export interface JoinInfo {
  address: string
  fingerprint: string
  server: string
  dir: string
  volumeId: string
  created: boolean
  applied: number
}

export interface JoinSummary {
  reason: string
  applied: number
  records: number
}

/** Members as the replica's ledger says; changes go to the primary. */
class ReplicaMembers implements MemberSet {
  private listeners: Array<() => void> = []
  constructor(private set: Set<string>) {}
  has(pid: string): boolean { return this.set.has(pid) }
  list(): string[] { return [...this.set].sort() }
  onChange(fn: () => void): void { this.listeners.push(fn) }
  update(set: Set<string>): void {
    this.set = set
    for (const fn of this.listeners) fn()
  }

  add(): Promise<string[]> { return Promise.reject(new PacioError('EPERM', 'this server holds a replica: add members on the primary')) }
  remove(): Promise<string[]> { return Promise.reject(new PacioError('EPERM', 'this server holds a replica: remove members on the primary')) }
}

async function pinPrimary(address: string, trustNew?: boolean): Promise<{fingerprint: string; cert: string}> {
  const {host, port} = parseServer(address)
  let got
  try {
    got = await fetchServerCert(host, port)
  } catch (error) {
    throw new PacioError('EINPUT', `cannot reach a PacioFS server at ${address}: ${(error as Error).message}`, {cause: error, suggestion: 'is `paciofs serve` running there?'})
  }

  const pinned = pinServer(knownServersFile(), `${host}:${port}`, got, {trustNew})
  return {fingerprint: pinned.fingerprint, cert: pinned.cert}
}

function grpcMessage(error: unknown): string {
  const e = error as grpc.ServiceError
  return typeof e?.details === 'string' && e.details ? e.details : (error as Error).message
}

export async function runJoin(req: JoinRequest): Promise<JoinSummary> {
  if (req.accept !== 'any' && req.accept !== 'manual') throw new PacioError('EINPUT', '--accept must be any or manual')
  tuneMallocForStreams() // before the streams start: see server/malloc.ts
  const stop = new StopSignals()
  const undo: Array<() => unknown> = []
  const cleanup = async () => {
    for (const step of undo.reverse()) await step()
  }

  try {
    const identity = loadOrCreateIdentity(req.identity)
    const tls = await loadOrCreateServerTls(req.stateDir ?? path.join(configDir(), 'server'))
    const volumes = new Map<string, ServedVolume>()
    const hosts = new Map<string, ReplicaHost>()
    const server = await startServer({host: req.host, port: req.port, tls, volumes, replicaHosts: hosts, maxHandles: 1024, onEvent: req.onEvent})
    undo.push(() => server.stop())
    const address = req.advertise ?? `${req.host}:${server.port}`
    const fingerprint = tls.fingerprint.toString('hex')

    // ask to join, and wait for the vote
    const pin = await pinPrimary(req.primary, req.trustNewServerKey)
    const primaryPeer = new Peer({key: '', address: req.primary, fingerprint: pin.fingerprint, cert: pin.cert}, identity, req.volume)
    undo.push(() => primaryPeer.close())
    let standing: {state: string; volume_id: string; primary: string; detail: string}
    let told = false
    // the join statement names the volume's id: learn it first (Status is open to anyone), then sign for it
    const status = await primaryPeer.channel().then(c => unary(c, 'Status', {volume: req.volume})).catch(error => {
      throw new PacioError('EINPUT', `${req.primary}: ${grpcMessage(error)}`, {cause: error})
    })
    if (status.role !== 'primary') throw new PacioError('EINPUT', `${req.primary} holds a replica of ${req.volume}; join through the primary`)
    for (;;) {
      const signed = signJoin(identity, {volumeId: status.volume_id, address, fingerprint, at: Date.now()})
      try {
        standing = await primaryPeer.channel().then(c => unary(c, 'Join', {volume: req.volume, server: identity.pid, address, fingerprint, at: signed.statement.at,
          signature: Buffer.from(signed.proof, 'hex')}, undefined, 15_000)) as typeof standing
      } catch (error) {
        throw new PacioError('EINPUT', `joining ${req.volume} at ${req.primary}: ${grpcMessage(error)}`, {cause: error})
      }

      if (standing.state === 'accepted') break
      if (standing.state === 'kicked' || standing.state === 'left') throw new PacioError('EPERM', `the group of ${req.volume} has voted this server out`)
      if (!told) req.onEvent?.(`asked to join ${req.volume}; ${standing.detail || 'waiting for a vote'}`)
      told = true
      await new Promise(resolve => setTimeout(resolve, 500))
      if (stop.reason !== undefined) return {reason: stop.reason, applied: 0, records: 0}
    }

    const primary = {address: req.primary, key: standing.primary, fingerprint: pin.fingerprint}
    const {layout, meta, created} = openReplicaDir(req.dir, {volumeId: standing.volume_id, name: req.volume, primary, server: identity.pid})
    undo.push(lockVolume(layout, 'paciofs join'))

    // the ledger mirror starts from the primary's genesis block, checked against the key the primary named
    let mirror: MirrorStore
    try {
      mirror = MirrorStore.open(layout.ledger, meta.id)
    } catch (error) {
      if ((error as PacioError).code !== 'ENOVOLUME') throw error
      const stream = await primaryPeer.stream('Follow', {from: 0})
      const first = await new Promise<BlockMsg>((resolve, reject) => {
        stream.once('data', resolve)
        stream.once('error', reject)
      })
      stream.cancel()
      const g = blockFromMsg(first)
      if (g.block.epoch !== 0 || g.block.producer !== primary.key) throw new PacioError('ETAMPER', `the primary's first block is not a genesis block of key ${primary.key.slice(0, 16)}…`)
      mirror = MirrorStore.open(layout.ledger, meta.id, g)
    }

    undo.push(() => mirror.close())
    const journal = Journal.open(layout.journal, meta.id, {backgroundCheckpoints: true})
    undo.push(() => journal.close())
    const history = new HistoryStore(layout.history, {create: true})
    const reader = await EmbeddedLedger.openReadOnly(layout.ledger, {ledgerId: meta.id, pollMs: 100})
    undo.push(() => reader.close())
    const servers = new ServerSet(primary.key, meta.id, meta.replication?.votes ?? 1)
    loadServers(journal, servers)
    const members = new ReplicaMembers(loadMembers(journal))
    const pool = new PeerPool({identity, volume: req.volume, primary: {...primary, cert: pin.cert}, servers, onEvent: req.onEvent})
    undo.push(() => pool.close())

    // what clients and peers see
    const blocks = new EventEmitter()
    blocks.setMaxListeners(0)
    const noBroadcast = {pid: identity.pid, broadcastJournaled: () => { throw new PacioError('EPERM', 'read-only replica') }, flush: async () => {}}
    const local = new LocalVolume(layout.root, new Recorder(journal, noBroadcast, identity.pid), {history, digestIntervalMs: 0})
    const readOnly = new ReadOnlyVolume(new HistoryView(local, history, () => readTimeline(layout.root)), () => primary.address)
    undo.push(() => readOnly.close())
    let follower: Follower | undefined
    const host: ReplicaHost = {
      name: meta.name, volumeId: meta.id, role: 'replica', accept: req.accept, serverKey: identity.pid,
      read: from => reader.read(from, mirror.head.epoch), checkpoint: epoch => reader.checkpoint(epoch), headEpoch: () => mirror.head.epoch,
      blocks, preimage: hash => preimageOf(journal, hash), history, root: layout.root,
      isMember: k => members.has(k), members: () => members.list(), servers, applied: new Map(),
      primaryHead: () => Math.max(follower?.primaryHead ?? 0, mirror.head.epoch), primaryAddress: primary.address,
    }
    hosts.set(meta.name, host)
    volumes.set(meta.name, {name: meta.name, id: meta.id, volume: readOnly, members, guard: new PathGuard(layout.root)})

    // report progress to the primary, vote for newcomers if the policy is any
    let reported = -1
    let reporting = false
    const report = () => {
      if (reporting || reported === mirror.head.epoch) return
      reporting = true
      const epoch = mirror.head.epoch
      pool.primary.call('Applied', {epoch}, 5_000).then(() => {
        reported = epoch
        reporting = false
        if (mirror.head.epoch !== epoch) report() // more was applied meanwhile
      }, error => {
        reporting = false
        // the primary no longer counts this server as accepted: it left (`paciofs leave`) or was voted out
        if ((error as grpc.ServiceError).code === grpc.status.PERMISSION_DENIED) stop.request(`this server is no longer in the group of ${meta.name}: ${grpcMessage(error)}`)
      })
    }

    // also when nothing new was applied: the primary sees this server alive, and this server learns when it is no longer in the group
    const timer = setInterval(() => {
      reported = -1
      report()
    }, 1_000)
    undo.push(() => clearInterval(timer))
    servers.onChange(e => {
      if (e.key === identity.pid && (e.state === 'left' || e.state === 'kicked')) stop.request(`this server ${e.state === 'left' ? 'left' : 'was voted out of'} the group of ${meta.name}`)
      if (e.state === 'pending' && req.accept === 'any' && e.key !== identity.pid) {
        pool.primary.call('Vote', {vote: 'accept', server: e.key}).catch(error => req.onEvent?.(`vote for ${e.key.slice(0, 16)}…: ${grpcMessage(error)}`))
      }
    })

    follower = new Follower({
      root: layout.root, volumeId: meta.id, mirror, reader, journal, history, incomingDir: path.join(layout.state, 'incoming'), pool, servers, onEvent: req.onEvent,
      onApplied: () => {
        blocks.emit('block')
        report()
      },
      onRecord: r => {
        if (r.op === 'member-add' || r.op === 'member-remove') members.update(loadMembers(journal))
      },
    })
    await follower.init()
    const running = follower.run()
    undo.push(async () => {
      follower!.stop()
      await running
      await follower!.flush()
    })
    if (stop.reason === undefined) {
      req.onReady?.({address, fingerprint: showFingerprint(tls.fingerprint), server: identity.pid, dir: layout.root, volumeId: meta.id, created, applied: mirror.head.epoch})
      await stop.until()
    }

    if (process.env.PACIOFS_REPLICA_TIMING) req.onEvent?.(`timing (ms): ${JSON.stringify(Object.fromEntries(Object.entries(follower.timing).map(([k, v]) => [k, Math.round(v)])))}, versions ${JSON.stringify(pool.versions)}`)
    return {reason: stop.reason ?? 'stopped', applied: mirror.head.epoch, records: follower.records}
  } finally {
    await cleanup()
    stop.dispose()
  }
}
