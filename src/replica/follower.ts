/**
 * A replica following its volume's ledger. For each block, in order:
 *
 * 1. the block must check out against the mirror's head (links, Merkle root,
 *    the producer's signature, its checkpoint signature) — else the peer that
 *    served it lied and the next peer is tried;
 * 2. its envelopes go through the broadcast's FIFO checker (signatures,
 *    per-sender sequence), which yields the salted hashes in ledger order;
 * 3. each hash's preimage (salt, record) is fetched from a peer and checked
 *    against the hash; each version a record names is fetched into the
 *    history store and a staging file, and checked against its digest
 *    (peers.ts, incoming.ts);
 * 4. each record is applied to the backing directory (apply.ts), then
 *    journaled with its place on the ledger — one record at a time, so after
 *    a kill -9 only the record being applied is applied again;
 * 5. the block is stored in the mirror (fsync'ed): the applied position.
 *
 * A restart resumes at the mirror's head + 1; records of that block that are
 * already in the journal are skipped.
 */
import fs from 'node:fs'
import {constants as C} from 'node:fs'
import {FifoChecker, type CheckerState} from '../broadcast/validate.js'
import type {Delivery} from '../broadcast/types.js'
import {PacioError} from '../errors.js'
import type {HistoryStore} from '../history/store.js'
import {BlockRejected, checkBlock, type MirrorStore} from '../ledger/embedded/mirror.js'
import type {Block, Ledger} from '../ledger/types.js'
import type {Journal} from '../volume/journal.js'
import type {FsRecord} from '../volume/types.js'
import {pipeVersion} from '../history/reader.js'
import {RecordApplier, type ContentSource} from './apply.js'
import {Incoming} from './incoming.js'
import {decodeRecord} from './journal-view.js'
import {type Peer, type PeerPool} from './peers.js'
import type {ServerSet} from './servers.js'
import {blockFromMsg, type BlockMsg} from './wire.js'

export interface FollowerOptions {
  root: string
  volumeId: string
  mirror: MirrorStore
  /** the mirror, read-only: to rebuild the FIFO checker at start */
  reader: Ledger
  journal: Journal
  history: HistoryStore
  /** where fetched versions are staged (emptied at start) */
  incomingDir: string
  pool: PeerPool
  servers: ServerSet
  onEvent?(message: string): void
  /** after each block is applied */
  onApplied?(epoch: number): void
  /** after each record is applied (members, servers) */
  onRecord?(r: FsRecord): void
}

const CONTENT_PARALLEL = 4
/** blocks prepared ahead of the one being applied */
const AHEAD = 16
/** blocks applied before they are stored in the mirror together, at most (and for at most this long) */
const MIRROR_BATCH = 64
const MIRROR_BATCH_MS = 250

interface Prepared {
  deliveries: Delivery[]
  pre: Map<string, {salt: Buffer; record: Buffer}>
  records: Map<string, FsRecord | undefined>
}

/** At most n tasks at once. */
class Slots {
  private running = 0
  private readonly waiting: Array<() => void> = []
  constructor(private readonly n: number) {}
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.n) await new Promise<void>(resolve => this.waiting.push(resolve))
    this.running++
    try {
      return await task()
    } finally {
      this.running--
      this.waiting.shift()?.()
    }
  }
}

export class Follower {
  private checker = new FifoChecker()
  /** the checker's state after the last block stored in the mirror */
  private mirrored?: CheckerState
  private readonly applier: RecordApplier
  private readonly incoming: Incoming
  private stopped = false
  private current?: {cancel(): void}
  private wake?: () => void
  primaryHead = 0
  records = 0
  deferredXattrs = 0
  failures = 0
  lastError = ''
  caughtUp = false
  /** where the time went (ms): blocks waited for, preimages, versions fetched, records applied, ledger mirror */
  readonly timing = {waitBlocks: 0, preimages: 0, fetch: 0, apply: 0, mirror: 0}

  constructor(private readonly opts: FollowerOptions) {
    const source: ContentSource = {
      install: (file, digest, size) => this.install(file, digest, size),
      xattrValue: (p, name, digest) => opts.pool.xattr(p, name, digest),
    }
    this.applier = new RecordApplier(opts.root, source)
    this.incoming = new Incoming(opts.incomingDir, opts.history)
  }

  get applied(): number {
    return this.opts.mirror.head.epoch
  }

  /** Feeds the blocks already mirrored through the FIFO checker (its state is not kept on disk). */
  async init(): Promise<void> {
    this.incoming.reset()
    const head = this.opts.mirror.head.epoch
    if (head === 0) return
    for await (const b of this.opts.reader.read(1, head)) this.checker.checkBlock(b, () => {}, () => {})
    this.mirrored = this.checker.snapshot()
    this.primaryHead = head
  }

  stop(): void {
    this.stopped = true
    this.current?.cancel()
    this.wake?.()
  }

  private sleep(ms: number): Promise<void> {
    return new Promise(resolve => {
      const t = setTimeout(done, ms)
      const self = this
      function done() {
        clearTimeout(t)
        self.wake = undefined
        resolve()
      }

      this.wake = done
    })
  }

  /** Follows until stop(): the primary first, other accepted servers when it cannot be reached. */
  async run(): Promise<void> {
    let quiet = 0
    while (!this.stopped) {
      let progressed = false
      for (const peer of this.sources()) {
        if (this.stopped) break
        try {
          progressed = (await this.followFrom(peer)) || progressed
        } catch (error) {
          this.failures++
          this.lastError = (error as Error).message
          if (error instanceof BlockRejected) await this.opts.pool.lied(peer, error.message)
          else if (quiet++ % 20 === 0) this.opts.onEvent?.(`following ${peer.info.address}: ${(error as Error).message}`)
        }
      }

      if (!this.stopped) await this.sleep(progressed ? 50 : 500)
    }
  }

  private sources(): Peer[] {
    const all = this.opts.pool.candidates()
    const primary = all.find(p => p.key === this.opts.pool.primary.key)
    return primary ? [primary, ...all.filter(p => p !== primary)] : all
  }

  /**
   * One Follow stream; returns whether any block was applied. Blocks are
   * checked as they arrive and prepared ahead (preimages fetched, versions
   * fetched into the history store, up to AHEAD blocks in advance), while an
   * applier works through them strictly in ledger order.
   */
  private async followFrom(peer: Peer): Promise<boolean> {
    const stream = await peer.stream('Follow', {from: this.applied + 1})
    this.current = {cancel: () => stream.cancel()}
    const queue: Array<{block: Block; cpSignature: string; prepared: Promise<Prepared>; ready: boolean; state: CheckerState}> = []
    let applied = false
    let ended = false
    let unmirrored: Array<{block: Block; cpSignature: string; state: CheckerState}> = []
    let batchStart: number | undefined
    const storeApplied = () => {
      if (unmirrored.length === 0) return
      const t = performance.now()
      this.opts.mirror.appendMany(unmirrored)
      this.timing.mirror += performance.now() - t
      const last = unmirrored[unmirrored.length - 1]
      unmirrored = []
      batchStart = undefined
      this.mirrored = last.state
      this.primaryHead = Math.max(this.primaryHead, last.block.epoch)
      applied = true
      this.opts.onApplied?.(last.block.epoch)
    }

    let failure: unknown
    let wakeApplier: (() => void) | undefined
    let wakeReader: (() => void) | undefined
    const applier = (async () => {
      for (;;) {
        if (queue.length === 0) {
          if (ended || failure !== undefined) return
          await new Promise<void>(resolve => (wakeApplier = resolve))
          continue
        }

        const item = queue[0]
        let t = performance.now()
        const prep = await item.prepared
        this.timing.waitBlocks += performance.now() - t
        t = performance.now()
        await this.applyPrepared(item.block, prep)
        this.timing.apply += performance.now() - t
        queue.shift()
        wakeReader?.()
        unmirrored.push(item)
        batchStart ??= performance.now()
        // while the next block is ready too, it is applied before these are stored: one fsync'ed transaction for
        // several blocks (a crash before it re-applies their records, which the journal then skips)
        if (queue[0]?.ready && unmirrored.length < MIRROR_BATCH && performance.now() - batchStart < MIRROR_BATCH_MS) continue
        storeApplied()
      }
    })().catch(error => {
      try {
        storeApplied() // the blocks before the one that failed were applied
      } catch (error2) {
        this.opts.onEvent?.(`could not store applied blocks: ${(error2 as Error).message}`)
      }

      failure = error
      stream.cancel()
      wakeReader?.()
    })

    try {
      let tail = this.opts.mirror.head
      for await (const msg of stream as AsyncIterable<BlockMsg>) {
        if (this.stopped || failure !== undefined) break
        const {block, cpSignature} = blockFromMsg(msg)
        if (block.epoch <= tail.epoch) continue
        checkBlock(this.opts.volumeId, block, this.opts.mirror.producer, tail, cpSignature)
        tail = {epoch: block.epoch, hash: block.hash, time: block.time}
        const prepared = this.prepare(block)
        const item = {block, cpSignature, prepared, ready: false, state: this.checker.snapshot()}
        prepared.then(() => (item.ready = true), () => (item.ready = true)) // a failure is surfaced by the applier
        queue.push(item)
        wakeApplier?.()
        while (queue.length >= AHEAD && failure === undefined && !this.stopped) await new Promise<void>(resolve => (wakeReader = resolve))
      }
    } catch (error) {
      if (!this.stopped && failure === undefined) failure = error
    } finally {
      ended = true
      wakeApplier?.()
      await applier
      this.current = undefined
      stream.cancel()
      this.incoming.discard() // versions staged for blocks not applied: prepared again on the next stream
      // blocks checked but not applied are fed to the checker again on the next stream: back to the applied position
      if (this.checker.nextEpoch !== this.applied + 1) this.checker = new FifoChecker(this.mirrored)
    }

    if (failure !== undefined && !this.stopped) throw failure
    return applied
  }

  /** In ledger order (the FIFO checker keeps per-sender state): deliveries, their preimages, and the versions they name. */
  private prepare(block: Block): Promise<Prepared> {
    const deliveries: Delivery[] = []
    this.checker.checkBlock(block, d => deliveries.push(d), v => this.opts.onEvent?.(`block ${v.epoch}: envelope ${v.kind} (${v.detail}); kept on the ledger, verify reports it`))
    return (async () => {
      const fresh = deliveries.filter(d => !this.opts.journal.byHash(d.payload))
      let t = performance.now()
      const pre = fresh.length > 0 ? await this.opts.pool.preimages(fresh.map(d => d.payload)) : new Map<string, {salt: Buffer; record: Buffer}>()
      this.timing.preimages += performance.now() - t
      t = performance.now()
      const records = new Map<string, FsRecord | undefined>()
      for (const [k, p] of pre) {
        const r = decodeRecord(p.record)
        records.set(k, r)
        if (r?.digest && r.size !== undefined) this.incoming.want(r.digest)
      }

      await Promise.all([...records.values()].map(r => (r?.digest && r.size !== undefined ? this.fetch(r.digest, r.size) : undefined)))
      this.timing.fetch += performance.now() - t
      return {deliveries, pre, records}
    })()
  }

  /** Fetches a version into the history store once, at most CONTENT_PARALLEL at a time. */
  private fetch(digest: string, size: number): Promise<void> {
    if (this.opts.history.has(digest)) return Promise.resolve()
    let p = this.fetching.get(digest)
    if (!p) {
      p = this.slots.run(() => this.opts.pool.fetchContent(this.incoming, digest, size)).finally(() => this.fetching.delete(digest))
      this.fetching.set(digest, p)
    }

    return p
  }

  private readonly fetching = new Map<string, Promise<void>>()
  private readonly slots = new Slots(CONTENT_PARALLEL)

  private async applyPrepared(block: Block, prep: Prepared): Promise<void> {
    const {journal} = this.opts
    let installed = false
    for (const d of prep.deliveries) {
      if (journal.byHash(d.payload)) {
        journal.place([{hash: d.payload, epoch: d.epoch, txid: d.txid, pid: d.pid, seq: d.seq}]) // applied before a crash
        continue
      }

      const key = d.payload.toString('hex')
      const p = prep.pre.get(key)
      if (!p) throw new PacioError('ELEDGER', `block ${block.epoch}: no preimage for salted hash ${key.slice(0, 16)}…`)
      const r = prep.records.get(key)
      if (r) {
        try {
          const out = await this.applier.apply(r)
          this.deferredXattrs += out.deferred
          installed ||= r.digest !== undefined
        } catch (error) {
          if (error instanceof PacioError) throw error // a peer could not give what the record needs: try again later
          this.failures++
          this.lastError = `${r.op} ${r.path}: ${(error as Error).message}`
          this.opts.onEvent?.(`block ${block.epoch}: could not apply ${r.op} ${r.path}: ${(error as Error).message} (verify on this replica will report it)`)
        } finally {
          if (r.digest && r.size !== undefined) this.incoming.release(r.digest)
        }
      }

      const [jseq] = journal.append([{hash: d.payload, salt: p.salt, record: p.record, op: r?.op ?? '?', path: r?.path ?? '/', at: r?.at ?? 0}])
      journal.place([{jseq, hash: d.payload, epoch: d.epoch, txid: d.txid, pid: d.pid, seq: d.seq}])
      this.records++
      if (r) {
        this.opts.servers.apply(r)
        this.opts.onRecord?.(r)
      }
    }

    // like a primary's versions (durable at the next fsync, sync or unmount), the fetched ones are made durable
    // about once a second rather than per block: a crash of the process loses nothing, a power loss at most the
    // versions of the last second or two. The flush runs beside the applier (one at a time), which goes on meanwhile.
    if (installed) this.unflushed = true
    if (this.unflushed && !this.flushing && Date.now() - this.flushedAt > 1_000) {
      this.flushing = this.flush().catch(error => this.opts.onEvent?.(`could not flush fetched versions: ${(error as Error).message}`)).finally(() => (this.flushing = undefined))
    }
  }

  private unflushed = false
  private flushedAt = 0
  private flushing?: Promise<void>

  /** Makes the versions fetched so far durable (fdatasync). */
  async flush(): Promise<void> {
    await this.flushing
    this.unflushed = false
    this.flushedAt = Date.now()
    await this.opts.history.flush()
  }

  /**
   * Writes a version into a file: the staged copy when there is one
   * (incoming.ts), else from the history store, checked against the digest
   * before the last chunk is written (in place: its inode, owner, mode and
   * links stay).
   */
  private async install(file: string, digest: string, size: number): Promise<void> {
    await this.fetch(digest, size)
    if (this.incoming.install(file, digest)) return
    const fh = await fs.promises.open(file, C.O_WRONLY | C.O_CREAT | C.O_TRUNC | C.O_NOFOLLOW, 0o600)
    try {
      await pipeVersion(this.opts.history, this.opts.history.manifest(digest), {whole: true, chunks: false, sink: async (data, pos) => {
        await fh.write(data, 0, data.length, pos)
      }})
    } finally {
      await fh.close()
    }
  }
}
