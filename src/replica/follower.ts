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
 *    history store and checked against its digest (peers.ts);
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
import {FifoChecker} from '../broadcast/validate.js'
import type {Delivery} from '../broadcast/types.js'
import {PacioError} from '../errors.js'
import type {HistoryStore} from '../history/store.js'
import {BlockRejected, checkBlock, type MirrorStore} from '../ledger/embedded/mirror.js'
import type {Block, Ledger} from '../ledger/types.js'
import type {Journal} from '../volume/journal.js'
import type {FsRecord} from '../volume/types.js'
import {RecordApplier, type ContentSource} from './apply.js'
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
  private readonly checker = new FifoChecker()
  private readonly applier: RecordApplier
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
  }

  get applied(): number {
    return this.opts.mirror.head.epoch
  }

  /** Feeds the blocks already mirrored through the FIFO checker (its state is not kept on disk). */
  async init(): Promise<void> {
    const head = this.opts.mirror.head.epoch
    if (head === 0) return
    for await (const b of this.opts.reader.read(1, head)) this.checker.checkBlock(b, () => {}, () => {})
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
    const queue: Array<{block: Block; cpSignature: string; prepared: Promise<Prepared>}> = []
    let applied = false
    let ended = false
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
        t = performance.now()
        this.opts.mirror.append(item.block, item.cpSignature)
        this.timing.mirror += performance.now() - t
        queue.shift()
        wakeReader?.()
        this.primaryHead = Math.max(this.primaryHead, item.block.epoch)
        applied = true
        this.opts.onApplied?.(item.block.epoch)
      }
    })().catch(error => {
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
        prepared.catch(() => {}) // surfaced by the applier
        queue.push({block, cpSignature, prepared})
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
      for (const [k, p] of pre) records.set(k, decodeRecord(p.record))
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
      p = this.slots.run(() => this.opts.pool.fetchContent(this.opts.history, digest, size)).finally(() => this.fetching.delete(digest))
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
    // about once a second rather than per block: a crash of the process loses nothing, a power loss at most that second
    if (installed) this.unflushed = true
    if (this.unflushed && Date.now() - this.flushedAt > 1_000) await this.flush()
  }

  private unflushed = false
  private flushedAt = 0

  /** Makes the versions fetched so far durable (fdatasync). */
  async flush(): Promise<void> {
    this.unflushed = false
    this.flushedAt = Date.now()
    await this.opts.history.flush()
  }

  /** Writes a version into a file in place (its inode, owner, mode and links stay), from the checked history store. */
  private async install(file: string, digest: string, size: number): Promise<void> {
    await this.fetch(digest, size)
    const fh = await fs.promises.open(file, C.O_WRONLY | C.O_CREAT | C.O_TRUNC | C.O_NOFOLLOW, 0o600)
    try {
      let pos = 0
      for await (const chunk of this.opts.history.chunks(digest)) {
        await fh.write(chunk, 0, chunk.length, pos)
        pos += chunk.length
      }
    } finally {
      await fh.close()
    }
  }
}
