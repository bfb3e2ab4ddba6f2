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

  /** One Follow stream; returns whether any block was applied. */
  private async followFrom(peer: Peer): Promise<boolean> {
    const stream = await peer.stream('Follow', {from: this.applied + 1})
    this.current = {cancel: () => stream.cancel()}
    let applied = false
    try {
      for await (const msg of stream as AsyncIterable<BlockMsg>) {
        if (this.stopped) break
        const {block, cpSignature} = blockFromMsg(msg)
        if (block.epoch <= this.applied) continue
        checkBlock(this.opts.volumeId, block, this.opts.mirror.producer, this.opts.mirror.head, cpSignature)
        await this.applyBlock(block)
        this.opts.mirror.append(block, cpSignature)
        this.primaryHead = Math.max(this.primaryHead, block.epoch)
        applied = true
        this.opts.onApplied?.(block.epoch)
      }
    } catch (error) {
      if (this.stopped) return applied
      throw error
    } finally {
      this.current = undefined
      stream.cancel()
    }

    return applied
  }

  private async applyBlock(block: Block): Promise<void> {
    const deliveries: Delivery[] = []
    this.checker.checkBlock(block, d => deliveries.push(d), v => this.opts.onEvent?.(`block ${v.epoch}: envelope ${v.kind} (${v.detail}); kept on the ledger, verify reports it`))
    const {journal} = this.opts
    const todo = deliveries.filter(d => {
      if (!journal.byHash(d.payload)) return true
      journal.place([{hash: d.payload, epoch: d.epoch, txid: d.txid, pid: d.pid, seq: d.seq}]) // applied before a crash
      return false
    })
    if (todo.length === 0) return
    const pre = await this.opts.pool.preimages(todo.map(d => d.payload))
    const records = todo.map(d => {
      const p = pre.get(d.payload.toString('hex'))!
      return {d, p, r: decodeRecord(p.record)}
    })

    await this.prefetch(records.map(x => x.r))
    let installed = false
    for (const {d, p, r} of records) {
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

    if (installed) await this.opts.history.flush()
  }

  /** Fetches the versions this block's records name, a few at a time, before they are applied in order. */
  private async prefetch(records: Array<FsRecord | undefined>): Promise<void> {
    const want = new Map<string, number>()
    for (const r of records) if (r?.digest && r.size !== undefined && !this.opts.history.has(r.digest)) want.set(r.digest, r.size)
    const queue = [...want]
    const worker = async () => {
      for (let next = queue.shift(); next; next = queue.shift()) await this.opts.pool.fetchContent(this.opts.history, next[0], next[1])
    }

    await Promise.all(Array.from({length: Math.min(CONTENT_PARALLEL, queue.length)}, worker))
  }

  /** Writes a version into a file in place (its inode, owner, mode and links stay), from the checked history store. */
  private async install(file: string, digest: string, size: number): Promise<void> {
    await this.opts.pool.fetchContent(this.opts.history, digest, size)
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
