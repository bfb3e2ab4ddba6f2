/**
 * The recorder turns file-system operations into records:
 *   hash = sha256(salt || canonical(record)), a fresh 32-byte salt each time.
 * The journal keeps (record, salt, hash); the broadcast layer carries only the
 * hash to the ledger. `record()` resolves once the row is in the journal,
 * which is what an operation waits for before it returns to its caller. The
 * rows are written in a microtask: one SQLite transaction for every record
 * made while the current callback runs, and no wait for another turn of the
 * event loop (each turn costs an operation more than the insert itself).
 * The journal is the durable queue towards the ledger: the hashes go to the
 * broadcast without a second write (broadcastJournaled), and after a crash
 * recover() sends again whatever the ledger does not have. Ledger commit
 * happens behind it, in batches; `committed()` waits for it.
 */
import {randomBytes} from 'node:crypto'
import {canonical, type Canonical} from '../crypto/canonical.js'
import {sha256} from '../crypto/hash.js'
import type {Delivery, DeliverySink} from '../broadcast/types.js'
import type {Journal, Placement} from './journal.js'
import type {Caller, FsRecord} from './types.js'
import {actingMember} from './acting.js'

/** What the recorder needs of the broadcast layer. */
export interface BroadcastPort {
  readonly pid: string
  /**
   * Queues payloads the caller has journaled itself (a crash may drop them
   * from the broadcast's queue: recover() re-sends them); `sink` hears of
   * each one, by its tag, once it is committed (or cannot be).
   */
  broadcastJournaled(payloads: Buffer[], sink: DeliverySink, tags: readonly number[]): void
  flush(): Promise<void>
}

export type RecordBody = Omit<FsRecord, 'v' | 'who' | 'at'>

interface Queued {
  row: {hash: Buffer; salt: Buffer; record: Buffer; op: string; path: string; at: number}
  intent?: Intent
  opLogSeq?: number
  resolve: (hash: Buffer) => void
  reject: (e: unknown) => void
}

/** An intent noted by intend(); `settled` once it is dropped (by settleIntent, or with its record). */
export interface Intent {
  readonly id: number
  settled: boolean
}

const SALT_POOL = 32 * 1024

/**
 * How long a record of an operation already logged and answered (oplog.ts,
 * `made.lazy`) may wait for the next journal transaction: the records of the
 * operations made meanwhile share it. Any other record, and committed(),
 * write the queue at once.
 */
const LAZY_MS = 10
/** Records waiting lazily at most (beyond, the queue is written at once). */
const LAZY_MAX = 256

/** How long placements wait after the journal was busy. */
const PLACE_RETRY_MS = 50
/** How long a record or an intent waits after the journal was busy, and for how long in all before it fails. */
const BUSY_RETRY_MS = 20
const BUSY_GIVE_UP_MS = 30_000

/** SQLITE_BUSY and its extended codes (SQLITE_BUSY_SNAPSHOT, ...). */
function isBusy(error: unknown): boolean {
  return String((error as {code?: unknown} | undefined)?.code ?? '').startsWith('SQLITE_BUSY')
}

/** Tag of a re-sent payload whose journal key is not at hand (it is placed by its hash). */
const NO_KEY = -1

export class Recorder implements DeliverySink {
  private queue: Queued[] = []
  private scheduled = false
  /** a timer writes the queue (only lazy records wait in it) */
  private lazyTimer?: NodeJS.Timeout
  private placements: Placement[] = []
  private placing = false
  /** hashes sent and not yet heard of, and who waits for that to reach 0 */
  private unsettled = 0
  private settledWaiters: Array<() => void> = []
  private saltPool = Buffer.alloc(0)
  private saltOffset = 0
  private failedWith: unknown
  /** when the journal first answered busy to the batch being written (undefined: it did not) */
  private busySince?: number
  /** Hears the highest op log number (oplog.ts) once its record is journaled. */
  onOpLogJournaled?: (seq: number) => void

  constructor(private readonly journal: Journal, private readonly bc: BroadcastPort, readonly member: string) {}

  /** Obfuscates one record: the pure part, exposed for the auditor and tests. */
  static obfuscate(record: FsRecord, salt: Buffer): {bytes: Buffer; hash: Buffer} {
    const bytes = canonical(record as unknown as Canonical)
    return {bytes, hash: sha256(salt, bytes)}
  }

  private salt(): Buffer {
    if (this.saltOffset + 32 > this.saltPool.length) {
      this.saltPool = randomBytes(SALT_POOL)
      this.saltOffset = 0
    }

    const s = Buffer.from(this.saltPool.subarray(this.saltOffset, this.saltOffset + 32))
    this.saltOffset += 32
    return s
  }

  /** See Journal.intend: a new entry is about to appear at path. */
  async intend(op: string, path: string): Promise<Intent> {
    for (const since = Date.now(); ;) {
      try {
        return {id: this.journal.intend(op, path), settled: false}
      } catch (error) {
        if (!isBusy(error) || Date.now() - since >= BUSY_GIVE_UP_MS) throw error
      }

      await new Promise(resolve => setTimeout(resolve, BUSY_RETRY_MS)) // busy: see flushJournal
    }
  }

  /** Drops an intent not yet dropped with its record. */
  settleIntent(intent: Intent): void {
    if (intent.settled) return
    this.journal.settleIntent(intent.id)
    intent.settled = true
  }

  /**
   * Journals a record (resolves, with its salted hash, when it survives kill -9) and sends the hash towards the ledger.
   * `intent`: the operation's intent, dropped in the record's own journal transaction.
   * `made`: an operation made and logged already (oplog.ts: by the FUSE binding, or
   * by the volume itself), its time, and its op log number, noted in the record's
   * journal transaction. `lazy`: its caller was answered already (the entry is what
   * survives a crash), so the record may wait up to LAZY_MS for the records after it.
   */
  record(body: RecordBody, caller: Caller, intent?: Intent, made?: {at: number; opLogSeq: number; lazy?: boolean}): Promise<Buffer> {
    if (this.failedWith) return Promise.reject(this.failedWith)
    const rec: FsRecord = {v: 1, ...body, who: {uid: caller.uid, gid: caller.gid, pid: caller.pid, member: actingMember() ?? this.member}, at: made?.at ?? Date.now()}
    for (const k of Object.keys(rec) as Array<keyof FsRecord>) if (rec[k] === undefined) delete rec[k]
    const salt = this.salt()
    const {bytes, hash} = Recorder.obfuscate(rec, salt)
    return new Promise((resolve, reject) => {
      this.queue.push({row: {hash, salt, record: bytes, op: rec.op, path: rec.path, at: rec.at}, intent, opLogSeq: made?.opLogSeq, resolve, reject})
      if (made?.lazy && this.queue.length < LAZY_MAX) this.flushLater()
      else this.flushSoon()
    })
  }

  /** The queue is written in a microtask (and not by the lazy timer). */
  private flushSoon(): void {
    if (this.lazyTimer) {
      clearTimeout(this.lazyTimer)
      this.lazyTimer = undefined
      this.scheduled = false
    }

    if (!this.scheduled) {
      this.scheduled = true
      queueMicrotask(() => this.flushJournal())
    }
  }

  /** The queue is written within LAZY_MS (unless something writes it sooner). */
  private flushLater(): void {
    if (this.scheduled) return
    this.scheduled = true
    this.lazyTimer = setTimeout(() => this.flushJournal(), LAZY_MS)
  }

  private flushJournal(): void {
    this.scheduled = false
    this.lazyTimer = undefined
    const batch = this.queue
    this.queue = []
    let keys: number[]
    let mark: number | undefined
    try {
      const settle: number[] = []
      for (const q of batch) {
        if (q.intent && !q.intent.settled) settle.push(q.intent.id)
        if (q.opLogSeq !== undefined) mark = Math.max(mark ?? -1, q.opLogSeq)
      }
      keys = this.journal.append(batch.map(q => q.row), settle, mark)
      for (const q of batch) if (q.intent) q.intent.settled = true
    } catch (error) {
      // busy: another connection (a WAL checkpoint) held the journal's lock past the busy timeout
      // (seen under a profiler, whose signals most likely cut SQLite's busy waits short): the batch,
      // and what comes meanwhile, is written later
      if (isBusy(error) && Date.now() - (this.busySince ??= Date.now()) < BUSY_GIVE_UP_MS) {
        this.queue = batch.concat(this.queue)
        this.scheduled = true
        setTimeout(() => this.flushJournal(), BUSY_RETRY_MS)
        return
      }

      this.failedWith = error
      for (const q of batch) q.reject(error)
      return
    }

    this.busySince = undefined
    if (mark !== undefined) this.onOpLogJournaled?.(mark)
    this.send(batch.map(q => q.row.hash), keys)
    for (const q of batch) q.resolve(q.row.hash)
  }

  private send(hashes: Buffer[], keys?: number[]): void {
    this.unsettled += hashes.length
    try {
      this.bc.broadcastJournaled(hashes, this, keys ?? hashes.map(() => NO_KEY))
    } catch (error) {
      this.failedWith = error
      this.unsettled -= hashes.length
      this.wakeIfSettled()
    }
  }

  /** DeliverySink: a hash is on the ledger (tag: its journal key). */
  delivered(tag: number, d: Delivery): void {
    this.place(d, tag === NO_KEY ? undefined : tag)
    this.unsettled--
    this.wakeIfSettled()
  }

  /** DeliverySink: the broadcast gave up on a hash (it closed); the row stays unplaced and is re-sent at the next open. */
  failed(_tag: number, error: Error): void {
    this.failedWith ??= error
    this.unsettled--
    this.wakeIfSettled()
  }

  private wakeIfSettled(): void {
    if (this.unsettled === 0) for (const wake of this.settledWaiters.splice(0)) wake()
  }

  private place(d: Delivery, jseq?: number): void {
    this.placements.push({jseq, hash: d.payload, epoch: d.epoch, txid: d.txid, pid: d.pid, seq: d.seq})
    this.placeSoon()
  }

  /**
   * Writes the placements waiting, on a later turn. A journal that is busy (another connection,
   * e.g. a WAL checkpoint, holds its lock past the busy timeout) gets them again PLACE_RETRY_MS
   * later: a placement only says where a committed record landed, and a row left unplaced is
   * placed by recover() at the next open anyway. Any other error fails the recorder (committed()
   * reports it) instead of escaping from the timer and ending the process with its mount.
   */
  private placeSoon(delayMs = 0): void {
    if (this.placing) return
    this.placing = true
    const write = () => {
      this.placing = false
      const batch = this.placements
      this.placements = []
      try {
        this.journal.place(batch)
      } catch (error) {
        if (!isBusy(error)) {
          this.failedWith ??= error
          return
        }

        this.placements = batch.concat(this.placements)
        this.placeSoon(PLACE_RETRY_MS)
      }
    }

    if (delayMs > 0) setTimeout(write, delayMs)
    else setImmediate(write)
  }

  /** Resolves when every record made so far is committed on the ledger and placed in the journal. */
  async committed(): Promise<void> {
    if (this.lazyTimer) this.flushSoon()
    while (this.queue.length > 0 || this.scheduled) await new Promise(resolve => setImmediate(resolve))
    await this.bc.flush()
    while (this.unsettled > 0) await new Promise<void>(resolve => this.settledWaiters.push(resolve))
    await new Promise(resolve => setImmediate(resolve)) // the placements are written
    while (this.placing && this.failedWith === undefined) await new Promise(resolve => setTimeout(resolve, PLACE_RETRY_MS)) // (after a busy journal)
    if (this.failedWith) throw this.failedWith
  }

  /**
   * After a crash: rows of the journal that never got their place on the
   * ledger. `found` holds those the ledger does have (hex hash -> delivery):
   * they are placed; the rest are sent again.
   */
  recover(found: Map<string, Delivery>): {resent: number; placed: number} {
    const placements: Placement[] = []
    const resend: Buffer[] = []
    for (const r of this.journal.unplaced()) {
      const d = found.get(r.hash.toString('hex'))
      if (d) placements.push({hash: r.hash, epoch: d.epoch, txid: d.txid, pid: d.pid, seq: d.seq})
      else resend.push(r.hash)
    }

    if (placements.length > 0) this.journal.place(placements)
    if (resend.length > 0) this.send(resend)
    return {resent: resend.length, placed: placements.length}
  }
}
