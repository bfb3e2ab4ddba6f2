/**
 * The embedded ledger: one per volume, a SQLite file of signed, hash-linked
 * blocks (see store.ts for the schema, ../block.ts for the block format).
 *
 * Group commit: append() calls that arrive within `groupWindowMs` of the
 * first pending one (or until `maxBlockTxs` / `maxBlockBytes` is reached) go
 * into ONE block, written in one SQLite transaction with synchronous=FULL in
 * WAL mode, so every append() resolves only once its block is fsync'ed. One
 * commit is in flight at a time with the inline writer, two with the worker
 * writer (it writes the next block while the previous one's fdatasync runs:
 * writer-worker.ts); what arrives meanwhile forms the next block.
 *
 * Open validates the genesis block and the newest `tailBlocks` blocks, not the
 * whole history (that would make every mount cost grow with the ledger's age);
 * validateAll() checks everything and is what the auditor runs.
 */
import {setImmediate as tick} from 'node:timers/promises'
import type {Identity} from '../../crypto/sign.js'
import {CorruptStateError, PacioError} from '../../errors.js'
import {checkConsistency, type ConsistencyResult} from '../checkpoint.js'
import type {AuditableLedger, Block, Checkpoint, Committed} from '../types.js'
import {DEFAULT_TAIL_BLOCKS, LedgerStore, batchTxids, type CommitOutcome} from './store.js'
import {createWriter, type HostedCheckpoints, type LedgerWriter, type WriterPlacement} from './writer.js'

export interface EmbeddedOpenOptions {
  /** path of the SQLite file, e.g. `<state dir>/ledger.db`; created if missing */
  file: string
  /** the volume id; an existing file of another volume is refused (EFOREIGN) */
  ledgerId: string
  /** signs blocks and checkpoints */
  identity: Identity
  /** how long the first pending append waits for company (ms, default 2) */
  groupWindowMs?: number
  /** most transactions in one block (default 10000) */
  maxBlockTxs?: number
  /** most payload bytes in one block (default 16 MiB) */
  maxBlockBytes?: number
  /** where SQLite writes and fsyncs run (default 'worker') */
  writer?: WriterPlacement
  /** newest blocks re-validated at open (default 32) */
  tailBlocks?: number
}

export interface ReadOnlyOptions {
  /** refuse the file unless it belongs to this volume */
  ledgerId?: string
  /** how often follow() looks for blocks written by another process (ms, default 250) */
  pollMs?: number
  tailBlocks?: number
}

interface Call {
  results: Committed[]
  remaining: number
  failed: boolean
  resolve: (r: Committed[]) => void
  reject: (e: Error) => void
}

interface Pending {
  payload: Buffer
  /** its txid, 32 raw bytes (hashed at append: the cost is spread over the calls, not paid per block) */
  id: Buffer
  call: Call
  pos: number
}

interface Follower {
  next: number
  onBlock: (b: Block) => void
  onError?: (e: Error) => void
  stopped: boolean
  running: boolean
}

/** Blocks handed to one follower per event-loop turn before yielding. */
const FOLLOW_BATCH = 32

export class EmbeddedLedger implements AuditableLedger {
  readonly driver = 'embedded'
  readonly ledgerId: string
  readonly file: string
  readonly readonly: boolean

  private readonly reader: LedgerStore
  private readonly writer?: LedgerWriter
  private readonly windowMs: number
  private readonly maxTxs: number
  private readonly maxBytes: number
  private readonly pollMs: number

  private headEpoch: number
  private headCheckpoint: Checkpoint
  private pending: Pending[] = []
  private pendingBytes = 0
  private firstPendingAt = 0
  private timer?: NodeJS.Timeout
  /** commits sent to the writer and not yet answered */
  private inFlight = 0
  private readonly maxInFlight: number
  private drained: Array<() => void> = []
  private readonly followers = new Set<Follower>()
  private poller?: NodeJS.Timeout
  private closed = false

  private constructor(args: {
    reader: LedgerStore
    writer?: LedgerWriter
    opts: Partial<EmbeddedOpenOptions>
    pollMs?: number
  }) {
    this.reader = args.reader
    this.writer = args.writer
    this.readonly = args.writer === undefined
    this.file = args.reader.file
    this.ledgerId = args.reader.ledgerId
    this.windowMs = args.opts.groupWindowMs ?? 2
    this.maxTxs = args.opts.maxBlockTxs ?? 10_000
    this.maxBytes = args.opts.maxBlockBytes ?? 16 * 1024 * 1024
    this.pollMs = args.pollMs ?? 250
    this.maxInFlight = args.writer?.maxInFlight ?? 1
    this.headEpoch = args.reader.head.epoch
    this.headCheckpoint = args.reader.checkpoint()
  }

  /**
   * Create or open the ledger of a volume for writing. Throws
   * CorruptStateError (ECORRUPT, naming the file and epoch) for a damaged
   * file or block, PacioError EFOREIGN for another volume's or program's file.
   */
  static async open(opts: EmbeddedOpenOptions): Promise<EmbeddedLedger> {
    const writer = createWriter(opts.writer ?? 'worker', {
      file: opts.file,
      ledgerId: opts.ledgerId,
      identity: opts.identity,
      tailBlocks: opts.tailBlocks ?? DEFAULT_TAIL_BLOCKS,
    })
    await writer.open()
    let reader: LedgerStore
    try {
      reader = LedgerStore.openReader({file: opts.file, ledgerId: opts.ledgerId, skipValidation: true})
    } catch (error) {
      await writer.close()
      throw error
    }
    return new EmbeddedLedger({reader, writer, opts})
  }

  /**
   * Open an existing ledger for auditing. Never writes: append() is refused,
   * and opening a cleanly closed ledger creates no files beside it. follow()
   * polls for blocks another process commits.
   */
  static async openReadOnly(file: string, opts: ReadOnlyOptions = {}): Promise<EmbeddedLedger> {
    const reader = LedgerStore.openReader({file, ledgerId: opts.ledgerId, tailBlocks: opts.tailBlocks})
    return new EmbeddedLedger({reader, opts: {}, pollMs: opts.pollMs})
  }

  append(payloads: Buffer[]): Promise<Committed[]> {
    if (this.closed) return Promise.reject(new PacioError('ELEDGER', `${this.file}: ledger is closed`))
    if (this.readonly) return Promise.reject(new PacioError('EPERM', `${this.file}: ledger was opened read-only`))
    if (!Array.isArray(payloads)) return Promise.reject(new PacioError('EINPUT', 'append() takes an array of Buffers'))
    for (const p of payloads) if (!(p instanceof Uint8Array)) return Promise.reject(new PacioError('EINPUT', 'append() payloads must be Buffers'))
    if (payloads.length === 0) return Promise.resolve([])
    return new Promise<Committed[]>((resolve, reject) => {
      const call: Call = {results: new Array(payloads.length), remaining: payloads.length, failed: false, resolve, reject}
      if (this.pending.length === 0) this.firstPendingAt = performance.now()
      const ids = batchTxids(payloads)
      for (let i = 0; i < payloads.length; i++) {
        const p = Buffer.isBuffer(payloads[i]) ? payloads[i] : Buffer.from(payloads[i])
        this.pending.push({payload: p, id: ids.subarray(i * 32, i * 32 + 32), call, pos: i})
        this.pendingBytes += p.length
      }
      this.schedule()
    })
  }

  private schedule(): void {
    if (this.inFlight >= this.maxInFlight || this.pending.length === 0) return
    const full = this.pending.length >= this.maxTxs || this.pendingBytes >= this.maxBytes
    const waited = performance.now() - this.firstPendingAt
    if (full || waited >= this.windowMs) {
      if (this.timer) clearTimeout(this.timer)
      this.timer = undefined
      this.commitNext()
    } else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined
        this.commitNext()
      }, Math.max(0, this.windowMs - waited))
    }
  }

  private takeBatch(): Pending[] {
    let n = 0
    let bytes = 0
    while (n < this.pending.length && n < this.maxTxs && (n === 0 || bytes + this.pending[n].payload.length <= this.maxBytes)) {
      bytes += this.pending[n].payload.length
      n++
    }
    const batch = this.pending.splice(0, n)
    this.pendingBytes -= bytes
    this.firstPendingAt = performance.now()
    return batch
  }

  private commitNext(): void {
    if (this.inFlight >= this.maxInFlight || this.pending.length === 0) return
    this.inFlight++
    const batch = this.takeBatch()
    const payloads = batch.map((p) => p.payload)
    const ids = Buffer.allocUnsafe(batch.length * 32)
    for (let i = 0; i < batch.length; i++) batch[i].id.copy(ids, i * 32)
    this.writer!.commit(payloads, Date.now(), ids).then(
      (outcome) => this.committed(batch, outcome),
      (error: Error) => {
        for (const p of batch) {
          if (p.call.failed) continue
          p.call.failed = true
          p.call.reject(error)
        }
      },
    ).finally(() => {
      this.inFlight--
      if (this.pending.length > 0) this.schedule()
      else if (this.inFlight === 0) for (const d of this.drained.splice(0)) d()
    })
  }

  private committed(batch: Pending[], outcome: CommitOutcome): void {
    if (outcome.block && outcome.checkpoint) {
      this.headEpoch = outcome.block.epoch
      this.headCheckpoint = outcome.checkpoint
    }
    for (let i = 0; i < batch.length; i++) {
      const {call, pos} = batch[i]
      if (call.failed) continue
      call.results[pos] = {txid: outcome.txids[i], epoch: outcome.epochs[i]}
      if (--call.remaining === 0) call.resolve(call.results)
    }
    if (outcome.block) {
      const block: Block = {...outcome.block, txs: outcome.included.map((i) => ({txid: outcome.txids[i], payload: batch[i].payload}))}
      for (const f of this.followers) {
        if (f.next === block.epoch && !f.running) {
          f.next++
          this.call(f, block)
        } else {
          this.pump(f)
        }
      }
    }
  }

  /** Resolves when every append made so far has been committed (or failed). */
  flush(): Promise<void> {
    if (this.inFlight === 0 && this.pending.length === 0) return Promise.resolve()
    return new Promise((resolve) => this.drained.push(resolve))
  }

  private currentHead(): number {
    if (this.readonly) {
      this.headEpoch = this.reader.refreshHead().epoch
    }
    return this.headEpoch
  }

  async *read(fromEpoch: number, toEpoch?: number): AsyncIterable<Block> {
    if (!Number.isSafeInteger(fromEpoch) || fromEpoch < 0) throw new PacioError('EINPUT', `bad epoch ${fromEpoch}`)
    const last = Math.min(toEpoch ?? Number.MAX_SAFE_INTEGER, this.currentHead())
    for (let e = fromEpoch; e <= last; e++) {
      if (this.closed) return
      const b = this.reader.readBlock(e)
      if (!b) throw new CorruptStateError(this.file, 'block missing below the head', e)
      yield b
      if ((e - fromEpoch) % FOLLOW_BATCH === FOLLOW_BATCH - 1) await tick() // let I/O run during long reads
    }
  }

  /**
   * Calls onBlock for every block from fromEpoch on, existing ones first,
   * then new ones as they are committed (by this process, or for a read-only
   * ledger by another one, seen by polling), in order and each exactly once.
   * onBlock is never called synchronously from follow(). If onBlock throws,
   * or reading fails, following stops and onError (if given) gets the error.
   * Block objects may be shared between followers: treat them as read-only.
   */
  follow(fromEpoch: number, onBlock: (b: Block) => void, onError?: (e: Error) => void): () => void {
    const f: Follower = {next: Math.max(0, fromEpoch), onBlock, onError, stopped: false, running: false}
    this.followers.add(f)
    setImmediate(() => this.pump(f))
    if (this.readonly && !this.poller) {
      this.poller = setInterval(() => {
        const before = this.headEpoch
        if (this.currentHead() !== before) for (const g of this.followers) this.pump(g)
      }, this.pollMs)
      this.poller.unref()
    }
    return () => this.unfollow(f)
  }

  private unfollow(f: Follower): void {
    f.stopped = true
    this.followers.delete(f)
    if (this.followers.size === 0 && this.poller) {
      clearInterval(this.poller)
      this.poller = undefined
    }
  }

  private call(f: Follower, b: Block): boolean {
    try {
      f.onBlock(b)
      return true
    } catch (error) {
      this.unfollow(f)
      f.onError?.(error as Error)
      return false
    }
  }

  private pump(f: Follower): void {
    if (f.running || f.stopped || this.closed) return
    f.running = true
    try {
      for (let n = 0; n < FOLLOW_BATCH && f.next <= this.headEpoch && !f.stopped; n++) {
        const b = this.reader.readBlock(f.next)
        if (!b) throw new CorruptStateError(this.file, 'block missing below the head', f.next)
        f.next++
        if (!this.call(f, b)) return
      }
    } catch (error) {
      this.unfollow(f)
      f.onError?.(error as Error)
      return
    } finally {
      f.running = false
    }
    if (!f.stopped && f.next <= this.headEpoch) setImmediate(() => this.pump(f))
  }

  async head(): Promise<Checkpoint> {
    if (this.readonly) {
      const epoch = this.currentHead()
      if (epoch !== this.headCheckpoint.epoch) this.headCheckpoint = this.reader.checkpoint(epoch)
    }
    return this.headCheckpoint
  }

  /** The signed checkpoint of any committed block. */
  async checkpoint(epoch: number): Promise<Checkpoint> {
    return this.reader.checkpoint(epoch)
  }

  /**
   * Validate the whole history: SQLite's integrity check, then every block's
   * txids, Merkle root, hash, signature and link, genesis to head. Cost grows
   * with history; this is the auditor's full check (open() only checks the tail).
   * Throws CorruptStateError naming the file and the first bad epoch.
   * onBlock, if given, receives each block once it is validated, in order
   * (an auditor then reads the ledger once).
   */
  async validateAll(onProgress?: (epoch: number, head: number) => void, onBlock?: (b: Block) => void): Promise<void> {
    const head = this.currentHead()
    this.reader.integrityCheck()
    this.reader.validateTail(0) // genesis against meta
    const genesis = this.reader.readBlock(0)!
    onBlock?.(genesis)
    let prev = {epoch: 0, hash: genesis.hash}
    for (let e = 1; e <= head; e += FOLLOW_BATCH) {
      prev = this.reader.validateRange(e, Math.min(head, e + FOLLOW_BATCH - 1), prev, onBlock)
      onProgress?.(prev.epoch, head)
      await tick()
    }
  }

  /** Does the ledger still extend cp? Every block from its epoch on is checked (hash, Merkle root, signature, link). */
  async consistency(cp: Checkpoint): Promise<ConsistencyResult> {
    return checkConsistency(cp, this.read(Math.min(cp.epoch, this.currentHead())))
  }

  /**
   * Run another SQLite file's PASSIVE WAL checkpoints every `everyMs` on this
   * ledger's writer thread (see WorkerWriter.hostCheckpoints); undefined when
   * the writer has no thread of its own (inline, read-only). Stop the job
   * before close().
   */
  hostCheckpoints(file: string, everyMs: number, onLost: () => void): Promise<HostedCheckpoints> | undefined {
    if (this.closed || !this.writer?.hostCheckpoints) return undefined
    return this.writer.hostCheckpoints(file, everyMs, onLost)
  }

  /** Stop accepting appends, commit what is pending, stop followers and close the file. */
  async close(): Promise<void> {
    if (this.closed) return
    if (!this.readonly) {
      if (this.timer) clearTimeout(this.timer)
      this.timer = undefined
      if (this.pending.length > 0) this.commitNext()
      await this.flush()
    }
    this.closed = true
    for (const f of [...this.followers]) this.unfollow(f)
    this.reader.close()
    await this.writer?.close()
  }
}

