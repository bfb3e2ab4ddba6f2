/**
 * Reliable FIFO-order tamper-proof broadcast over a Ledger.
 *
 * Sending: payloads handed to broadcast() in one event-loop turn (or up to
 * maxBatch of them) become one signed envelope. The envelope is written to the
 * outbox (SQLite, WAL, survives kill -9) together with the new sequence state
 * BEFORE it is appended to the ledger, and removed once committed; open()
 * re-sends whatever the outbox still holds. The ledger's append is idempotent
 * by payload hash, so a re-sent envelope never lands twice.
 * Receiving: deliveries() reads blocks, checks every envelope with an
 * EnvelopeChecker and yields each payload in ledger order.
 */
import Database from 'better-sqlite3'
import type {Identity} from '../crypto/sign.js'
import {CorruptStateError} from '../errors.js'
import type {Block, Ledger} from '../ledger/types.js'
import {EnvelopeChecker} from './checker.js'
import {GENESIS_PREV, decodeEnvelope, sealEnvelope} from './seal.js'
import type {Delivery, Violation} from './types.js'

interface Waiter {
  payload: Buffer
  resolve: (d: Delivery) => void
  reject: (e: unknown) => void
}

export interface FifoBroadcastOptions {
  ledger: Ledger
  identity: Identity
  /** SQLite file for the outbox and sequence state, e.g. `<state>/broadcast.db` */
  file: string
  /** most payloads in one envelope (default 4096) */
  maxBatch?: number
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS state(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox(seq INTEGER PRIMARY KEY, wire BLOB NOT NULL);
`

export class FifoBroadcast {
  readonly pid: string
  private readonly db: Database.Database
  private seq = 0
  private prev = GENESIS_PREV
  private queue: Waiter[] = []
  private scheduled = false
  private readonly pending = new Map<string, number>() // payload hex -> count in queue/outbox
  private readonly inflight = new Set<Promise<void>>()
  private readonly maxBatch: number
  private failed: unknown

  constructor(private readonly opts: FifoBroadcastOptions) {
    this.pid = opts.identity.pid
    this.maxBatch = opts.maxBatch ?? 4096
    try {
      this.db = new Database(opts.file)
      this.db.pragma('journal_mode = WAL')
      this.db.pragma('synchronous = NORMAL')
      this.db.exec(SCHEMA)
    } catch (error) {
      throw new CorruptStateError(opts.file, `cannot open broadcast state: ${(error as Error).message}`)
    }

    const get = (k: string) => (this.db.prepare('SELECT value FROM state WHERE key = ?').get(k) as {value: string} | undefined)?.value
    const owner = get('pid')
    if (owner === undefined) this.db.prepare("INSERT INTO state(key, value) VALUES ('pid', ?)").run(this.pid)
    else if (owner !== this.pid) {
      // another identity sends from this volume now: its own sequence starts afresh
      this.db.prepare("UPDATE state SET value = ? WHERE key = 'pid'").run(this.pid)
      this.db.prepare("DELETE FROM state WHERE key IN ('seq', 'prev')").run()
    }

    this.seq = Number(get('seq') ?? 0)
    this.prev = get('prev') ?? GENESIS_PREV
  }

  /** Recovers the sequence from the ledger if local state is behind, then re-sends the outbox. */
  async open(): Promise<{resent: number}> {
    if (this.seq === 0) {
      // fresh (or lost) local state: continue after whatever this sender already has on the ledger
      const checker = new EnvelopeChecker(true)
      for await (const b of this.opts.ledger.read(0)) {
        for (const tx of b.txs) {
          const r = checker.check(tx.payload, b.epoch, tx.txid)
          if (r.ok && r.envelope.pid === this.pid) {
            this.seq = r.envelope.seq
            this.prev = r.hash
          }
        }
      }

      this.saveState()
    }

    const rows = this.db.prepare('SELECT seq, wire FROM outbox ORDER BY seq').all() as Array<{seq: number; wire: Buffer}>
    for (const row of rows) {
      const env = decodeEnvelope(row.wire)
      for (const p of env.payloads) this.mark(p, +1)
      this.track(this.commit(row.seq, row.wire, env.payloads.map(payload => ({payload, resolve() {}, reject() {}}))))
    }

    return {resent: rows.length}
  }

  private saveState(): void {
    const up = this.db.prepare('INSERT INTO state(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value')
    up.run('seq', String(this.seq))
    up.run('prev', this.prev)
  }

  private mark(payload: Buffer, delta: number): void {
    const k = payload.toString('hex')
    const n = (this.pending.get(k) ?? 0) + delta
    if (n <= 0) this.pending.delete(k)
    else this.pending.set(k, n)
  }

  /** Queued or in the outbox, not yet committed. */
  isPending(payload: Buffer): boolean {
    return this.pending.has(payload.toString('hex'))
  }

  /** Resolves with the payload's place on the ledger once its envelope is committed. */
  broadcast(payload: Buffer): Promise<Delivery> {
    if (this.failed) return Promise.reject(this.failed)
    return new Promise((resolve, reject) => {
      this.queue.push({payload, resolve, reject})
      this.mark(payload, +1)
      if (this.queue.length >= this.maxBatch) this.send()
      else if (!this.scheduled) {
        this.scheduled = true
        setImmediate(() => this.send())
      }
    })
  }

  private send(): void {
    this.scheduled = false
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch)
      const {wire, hash} = sealEnvelope(this.opts.identity, this.seq + 1, this.prev, batch.map(w => w.payload))
      const seq = this.seq + 1
      try {
        this.db.transaction(() => {
          this.db.prepare('INSERT INTO outbox(seq, wire) VALUES (?, ?)').run(seq, wire)
          this.seq = seq
          this.prev = hash
          this.saveState()
        })()
      } catch (error) {
        this.failed = error
        for (const w of batch) w.reject(error)
        continue
      }

      this.track(this.commit(seq, wire, batch))
    }
  }

  private track(p: Promise<void>): void {
    this.inflight.add(p)
    void p.finally(() => this.inflight.delete(p))
  }

  private async commit(seq: number, wire: Buffer, waiters: Waiter[]): Promise<void> {
    try {
      const [placed] = await this.opts.ledger.append([wire])
      this.db.prepare('DELETE FROM outbox WHERE seq = ?').run(seq)
      waiters.forEach((w, index) => {
        this.mark(w.payload, -1)
        w.resolve({pid: this.pid, epoch: placed.epoch, txid: placed.txid, seq, index, payload: w.payload})
      })
    } catch (error) {
      this.failed = error
      for (const w of waiters) w.reject(error)
    }
  }

  /** Resolves when everything broadcast so far is committed. */
  async flush(): Promise<void> {
    if (this.scheduled) this.send()
    while (this.inflight.size > 0) await Promise.all([...this.inflight])
    if (this.failed) throw this.failed
  }

  close(): void {
    if (this.db.open) this.db.close()
  }
}

/** The checked payloads of one block, in order; violations go to onViolation and are not delivered. */
export function blockDeliveries(checker: EnvelopeChecker, b: Block, onViolation?: (v: Violation) => void): Delivery[] {
  const out: Delivery[] = []
  for (const tx of b.txs) {
    const r = checker.check(tx.payload, b.epoch, tx.txid)
    if (!r.ok) {
      onViolation?.(r.violation)
      continue
    }

    const e = r.envelope
    for (let index = 0; index < e.payloads.length; index++) {
      out.push({pid: e.pid, epoch: b.epoch, txid: tx.txid, seq: e.seq, index, payload: e.payloads[index]})
    }
  }

  return out
}

/**
 * Every payload on the ledger from fromEpoch on (to toEpoch), checked, in
 * ledger order. Reading from epoch 0 checks every sender from its first
 * envelope; from later epochs the first envelope seen of a sender is trusted
 * as its baseline.
 */
export async function* deliveries(ledger: Ledger, fromEpoch = 0, toEpoch?: number, onViolation?: (v: Violation) => void): AsyncGenerator<Delivery> {
  const checker = new EnvelopeChecker(fromEpoch > 0)
  for await (const b of ledger.read(fromEpoch, toEpoch)) yield * blockDeliveries(checker, b, onViolation)
}
