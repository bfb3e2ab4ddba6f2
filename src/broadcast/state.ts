/**
 * A sender's persistent broadcast state: one SQLite file (WAL,
 * synchronous=NORMAL: a committed write survives kill -9 of the process,
 * though not necessarily a power cut), opened in exclusive locking mode so a
 * second process with the same state refuses to start instead of
 * equivocating.
 *
 *   meta(key, value)   pid, ledgerId, seq + prev (last envelope created),
 *                      scanEpoch (ledger epoch to re-scan from at open)
 *   queue(id, payload) payloads accepted by broadcast(), not yet in an envelope
 *   outbox(seq, envelope, first_qid, last_qid) envelopes created, not yet seen committed
 */
import Database from 'better-sqlite3'
import {statSync} from 'node:fs'
import {ZERO_HASH} from '../crypto/hash.js'
import {CorruptStateError, PacioError} from '../errors.js'

const APPLICATION_ID = 0x50434253 // 'PCBS'
const VERSION = 1

const SCHEMA = `
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE queue(id INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB NOT NULL);
CREATE TABLE outbox(seq INTEGER PRIMARY KEY, envelope BLOB NOT NULL, first_qid INTEGER NOT NULL, last_qid INTEGER NOT NULL);
`

export interface OutboxRow {
  seq: number
  envelope: Buffer
  first_qid: number
  last_qid: number
}

export interface QueueRow {
  id: number
  payload: Buffer
}

function wrap(file: string, error: unknown): PacioError {
  if (error instanceof PacioError) return error
  const code = (error as {code?: string})?.code ?? ''
  const msg = (error as Error)?.message ?? String(error)
  if (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT')) return new CorruptStateError(file, `broadcast state is damaged: ${msg}`)
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') {
    return new PacioError('EBUSY', `${file}: broadcast state is in use by another process`, {cause: error, details: {file}})
  }
  return new PacioError('EINTERNAL', `${file}: ${msg}`, {cause: error, details: {file}})
}

export class BroadcastState {
  readonly file: string
  private readonly db: Database.Database
  private readonly q: {
    enqueue: Database.Statement<[Buffer]>
    meta: Database.Statement<[string, string]>
    take: Database.Statement<[number], QueueRow>
    delQueue: Database.Statement<[number, number]>
    addOutbox: Database.Statement<[number, Buffer, number, number]>
    delOutbox: Database.Statement<[number]>
  }

  constructor(file: string, pid: string, ledgerId: string) {
    this.file = file
    let fresh = false
    try {
      fresh = statSync(file).size === 0
    } catch {
      fresh = true
    }
    try {
      this.db = new Database(file, {timeout: 200})
    } catch (error) {
      throw wrap(file, error)
    }
    try {
      this.db.pragma('locking_mode = EXCLUSIVE')
      if (fresh) {
        this.db.pragma('journal_mode = WAL')
        this.db.transaction(() => {
          this.db.pragma(`application_id = ${APPLICATION_ID}`)
          this.db.pragma(`user_version = ${VERSION}`)
          this.db.exec(SCHEMA)
          const ins = this.db.prepare('INSERT INTO meta(key, value) VALUES (?, ?)')
          ins.run('pid', pid)
          ins.run('ledgerId', ledgerId)
          ins.run('seq', '0')
          ins.run('prev', ZERO_HASH)
          ins.run('scanEpoch', '0')
        })()
      } else {
        const app = this.db.pragma('application_id', {simple: true})
        if (app !== APPLICATION_ID || this.db.pragma('user_version', {simple: true}) !== VERSION) {
          throw new PacioError('EFOREIGN', `${file}: not a PacioFS broadcast state file`, {details: {file}})
        }
        this.db.pragma('journal_mode = WAL')
      }
      this.db.pragma('synchronous = NORMAL')
      // take the exclusive lock now, so a second opener fails here
      this.db.exec('BEGIN IMMEDIATE; COMMIT')
      const meta = this.meta()
      if (meta.get('pid') !== pid) {
        throw new PacioError('EFOREIGN', `${file}: broadcast state belongs to sender ${meta.get('pid')}, not ${pid}`, {details: {file}})
      }
      if (meta.get('ledgerId') !== ledgerId) {
        throw new PacioError('EFOREIGN', `${file}: broadcast state belongs to ledger ${meta.get('ledgerId')}, not ${ledgerId}`, {details: {file}})
      }
      this.q = {
        enqueue: this.db.prepare('INSERT INTO queue(payload) VALUES (?)'),
        meta: this.db.prepare('INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)'),
        take: this.db.prepare('SELECT id, payload FROM queue ORDER BY id LIMIT ?'),
        delQueue: this.db.prepare('DELETE FROM queue WHERE id >= ? AND id <= ?'),
        addOutbox: this.db.prepare('INSERT INTO outbox(seq, envelope, first_qid, last_qid) VALUES (?, ?, ?, ?)'),
        delOutbox: this.db.prepare('DELETE FROM outbox WHERE seq = ?'),
      }
    } catch (error) {
      this.db.close()
      throw wrap(file, error)
    }
  }

  private meta(): Map<string, string> {
    const rows = this.db.prepare('SELECT key, value FROM meta').all() as Array<{key: string; value: string}>
    return new Map(rows.map((r) => [r.key, r.value]))
  }

  position(): {seq: number; prev: string; scanEpoch: number} {
    const m = this.meta()
    const seq = Number(m.get('seq'))
    const scanEpoch = Number(m.get('scanEpoch'))
    const prev = m.get('prev') ?? ''
    if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(scanEpoch) || !/^[0-9a-f]{64}$/.test(prev)) {
      throw new CorruptStateError(this.file, 'broadcast position (seq/prev/scanEpoch) is damaged')
    }
    return {seq, prev, scanEpoch}
  }

  /** Persist one payload (its own small transaction); returns its queue id. */
  enqueue(payload: Buffer): number {
    try {
      return Number(this.q.enqueue.run(payload).lastInsertRowid)
    } catch (error) {
      throw wrap(this.file, error)
    }
  }

  /** Persist several payloads in one transaction; returns their queue ids. */
  enqueueMany(payloads: Buffer[]): number[] {
    try {
      return this.db.transaction(() => payloads.map((p) => Number(this.q.enqueue.run(p).lastInsertRowid)))()
    } catch (error) {
      throw wrap(this.file, error)
    }
  }

  queued(limit = -1): QueueRow[] {
    return this.q.take.all(limit)
  }

  outbox(): OutboxRow[] {
    return this.db.prepare('SELECT seq, envelope, first_qid, last_qid FROM outbox ORDER BY seq').all() as OutboxRow[]
  }

  /** Move queue rows first..last (none if last < first) into a new outbox envelope and advance the position, atomically. */
  seal(seq: number, id: string, envelope: Buffer, firstQid: number, lastQid: number): void {
    try {
      this.db.transaction(() => {
        this.q.addOutbox.run(seq, envelope, firstQid, lastQid)
        if (lastQid >= firstQid) this.q.delQueue.run(firstQid, lastQid)
        this.q.meta.run('seq', String(seq))
        this.q.meta.run('prev', id)
      })()
    } catch (error) {
      throw wrap(this.file, error)
    }
  }

  /** An outbox envelope is on the ledger at `epoch`. */
  confirm(seq: number, epoch: number): void {
    try {
      this.db.transaction(() => {
        this.q.delOutbox.run(seq)
        this.q.meta.run('scanEpoch', String(epoch))
      })()
    } catch (error) {
      throw wrap(this.file, error)
    }
  }

  /** Adopt a position found on the ledger (local state was behind). */
  adopt(seq: number, prev: string): void {
    this.db.transaction(() => {
      this.q.meta.run('seq', String(seq))
      this.q.meta.run('prev', prev)
    })()
  }

  setScanEpoch(epoch: number): void {
    this.q.meta.run('scanEpoch', String(epoch))
  }

  /** Drop a stale outbox envelope and put its payloads back at the front of the queue. */
  requeue(seq: number, payloads: Buffer[]): void {
    this.db.transaction(() => {
      this.q.delOutbox.run(seq)
      const min = (this.db.prepare('SELECT min(id) AS m FROM queue').get() as {m: number | null}).m
      let id = (min ?? 1) - payloads.length
      const ins = this.db.prepare('INSERT INTO queue(id, payload) VALUES (?, ?)')
      for (const p of payloads) ins.run(id++, p)
    })()
  }

  close(): void {
    if (this.db.open) this.db.close()
  }
}
