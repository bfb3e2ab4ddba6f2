/**
 * The journal: every record with its salt and salted hash, and — once the
 * ledger has it — where it sits (epoch, txid, sender, sequence). The ledger
 * only ever sees the hash; the journal keeps the preimage so that an auditor
 * can check it. SQLite in WAL mode with synchronous=NORMAL: a committed insert
 * survives kill -9 of the process (it is in the OS's hands) without an fsync
 * on the hot path; durability against power loss comes from the ledger's
 * fsync'ed commit, which `fsync` on a file waits for. A mount's journal has
 * its WAL checkpoints run by a worker thread (checkpointer.ts), so that no
 * insert on the event loop pays for them.
 *
 * Indexes: the hash (the ledger's payload -> its row) and the rows not yet
 * placed; each one more index is one more page written per insert.
 */
import Database from 'better-sqlite3'
import {CorruptStateError, PacioError} from '../errors.js'
import {startCheckpointer, type CheckpointHost, type Checkpointer} from './checkpointer.js'

export interface JournalRow {
  jseq: number
  hash: Buffer
  salt: Buffer
  record: Buffer // canonical encoding of the FsRecord
  op: string
  path: string
  at: number
  epoch: number | null
  txid: string | null
  pid: string | null
  seq: number | null
}

/** jseq, hash, salt length, salt ‖ record */
export type AuditRow = [number, Buffer, number, Buffer]

/** SQLite page cache of a read-only journal (KiB) */
const READER_CACHE_KIB = 2 * 1024
/**
 * ...and of the writer (KiB). better-sqlite3 builds SQLite with 16 MB per
 * connection, and a connection keeps every page it touched until that is
 * full: the journal only grows at its tail, so a mount's journal cache grew
 * with every record (measured: the mount's main malloc heap ended 100,000 new
 * files at 24 MB with this cap, at 35 MB without). The tail, the unplaced-records index and the
 * intents stay within this; a lookup in the hash index that misses reads the
 * page from the OS's page cache.
 */
export const WRITER_CACHE_KIB = 2 * 1024

const AUDIT_SELECT = 'SELECT jseq, hash, length(salt), CAST(salt || record AS BLOB) FROM records'

/** jseq, hash as lowercase hex, salt as hex, the record as text */
export type AuditTextRow = [number, string, string, string]

export interface Placement {
  jseq?: number // when known, the row is found by its key rather than its hash
  hash: Buffer
  epoch: number
  txid: string
  pid: string
  seq: number
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records(
  jseq INTEGER PRIMARY KEY,
  hash BLOB NOT NULL UNIQUE,
  salt BLOB NOT NULL,
  record BLOB NOT NULL,
  op TEXT NOT NULL,
  path TEXT NOT NULL,
  at INTEGER NOT NULL,
  epoch INTEGER, txid TEXT, pid TEXT, seq INTEGER
);
CREATE INDEX IF NOT EXISTS records_unplaced ON records(jseq) WHERE epoch IS NULL;
CREATE TABLE IF NOT EXISTS intents(id INTEGER PRIMARY KEY, op TEXT NOT NULL, path TEXT NOT NULL, at INTEGER NOT NULL);
DROP INDEX IF EXISTS records_epoch;
DROP INDEX IF EXISTS records_path;
`

export class Journal {
  private readonly db: Database.Database
  private readonly insertStmt?: Database.Statement
  private readonly placeStmt?: Database.Statement
  private readonly placeByKeyStmt?: Database.Statement
  private checkpointer?: Checkpointer
  private auditByHash?: Database.Statement
  private auditByJseq?: Database.Statement
  private byJseq?: Database.Statement
  private intendStmt?: Database.Statement
  private settleStmt?: Database.Statement

  private constructor(readonly file: string, db: Database.Database, readonly readonly: boolean) {
    this.db = db
    if (!readonly) {
      this.insertStmt = db.prepare('INSERT OR IGNORE INTO records(hash, salt, record, op, path, at) VALUES (?, ?, ?, ?, ?, ?)')
      this.placeStmt = db.prepare('UPDATE records SET epoch = ?, txid = ?, pid = ?, seq = ? WHERE hash = ? AND epoch IS NULL')
      this.placeByKeyStmt = db.prepare('UPDATE records SET epoch = ?, txid = ?, pid = ?, seq = ? WHERE jseq = ? AND epoch IS NULL')
    }
  }

  /**
   * `backgroundCheckpoints`: a writer's WAL checkpoints run in a worker thread (for a mount; close() stops it),
   * on the host's thread when given one that can (see checkpointer.ts), else on a thread of their own.
   */
  static open(file: string, volumeId: string, opts: {readonly?: boolean; backgroundCheckpoints?: boolean | CheckpointHost} = {}): Journal {
    let db: Database.Database
    try {
      db = new Database(file, {readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false})
      // a reader (verify streams 200,000 rows) needs little cache: better-sqlite3's 16 MiB holds pages the OS's page cache holds too
      db.pragma(`cache_size = -${opts.readonly ? READER_CACHE_KIB : WRITER_CACHE_KIB}`)
      if (!opts.readonly) {
        db.pragma('journal_mode = WAL')
        db.pragma('synchronous = NORMAL')
        db.exec(SCHEMA)
      }

      db.prepare('SELECT jseq FROM records LIMIT 1').get() // a probe: the file is a journal (count(*) would read a whole index)
    } catch (error) {
      if (error instanceof PacioError) throw error
      throw new CorruptStateError(file, `cannot open journal: ${(error as Error).message}`)
    }

    const row = db.prepare("SELECT value FROM meta WHERE key = 'volume'").get() as {value: string} | undefined
    if (row === undefined) {
      if (opts.readonly) throw new CorruptStateError(file, 'journal has no volume id')
      db.prepare("INSERT INTO meta(key, value) VALUES ('volume', ?)").run(volumeId)
    } else if (row.value !== volumeId) {
      db.close()
      throw new PacioError('EFOREIGN', `${file}: journal of another volume (${row.value}, expected ${volumeId})`)
    }

    const journal = new Journal(file, db, opts.readonly ?? false)
    if (!journal.readonly && opts.backgroundCheckpoints) {
      const host = typeof opts.backgroundCheckpoints === 'function' ? opts.backgroundCheckpoints : undefined
      journal.checkpointer = startCheckpointer(db, file, undefined, host)
    }
    return journal
  }

  /**
   * Inserts a batch in one transaction; returns each row's jseq. `settle`:
   * intents (see intend) dropped in the same transaction, for the operations
   * whose records these are — one write less per new entry. `opLogSeq`: the
   * highest op log number (oplog.ts) among these records, noted with them.
   */
  append(rows: Array<Pick<JournalRow, 'hash' | 'salt' | 'record' | 'op' | 'path' | 'at'>>, settle: readonly number[] = [], opLogSeq?: number): number[] {
    this.appendTx ??= this.db.transaction((rs: typeof rows, ids: readonly number[], mark: number | undefined) => {
      const stmt = this.insertStmt!
      const keys = rs.map(r => Number(stmt.run(r.hash, r.salt, r.record, r.op, r.path, r.at).lastInsertRowid))
      if (ids.length > 0) this.settleStmt ??= this.db.prepare('DELETE FROM intents WHERE id = ?')
      for (const id of ids) this.settleStmt!.run(id)
      if (mark !== undefined) {
        this.opLogStmt ??= this.db.prepare("INSERT INTO meta(key, value) VALUES ('oplog', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
        this.opLogStmt.run(String(mark))
      }
      return keys
    })
    return this.appendTx(rows, settle, opLogSeq)
  }

  /** append's transaction, made once (better-sqlite3 builds a wrapper per transaction() call) */
  private appendTx?: (rows: Array<Pick<JournalRow, 'hash' | 'salt' | 'record' | 'op' | 'path' | 'at'>>, settle: readonly number[], opLogSeq: number | undefined) => number[]
  private opLogStmt?: Database.Statement

  /** The highest op log number (oplog.ts) whose record is journaled; -1 if none. */
  opLogJournaled(): number {
    const v = this.getMeta('oplog')
    return v === undefined ? -1 : Number(v)
  }

  /** Records where on the ledger each hash landed. Returns how many rows changed. */
  place(placements: Placement[]): number {
    const stmt = this.placeStmt!
    let changed = 0
    this.db.transaction(() => {
      for (const p of placements) {
        changed += p.jseq === undefined ? stmt.run(p.epoch, p.txid, p.pid, p.seq, p.hash).changes : this.placeByKeyStmt!.run(p.epoch, p.txid, p.pid, p.seq, p.jseq).changes
      }
    })()
    return changed
  }

  getMeta(key: string): string | undefined {
    return (this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as {value: string} | undefined)?.value
  }

  setMeta(key: string, value: string): void {
    this.db.prepare('INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value)
  }

  /** Rows not yet seen on the ledger, in journal order. */
  unplaced(): JournalRow[] {
    return this.db.prepare('SELECT * FROM records WHERE epoch IS NULL ORDER BY jseq').all() as JournalRow[]
  }

  /** Highest epoch any row was placed at (0 if none). */
  maxPlacedEpoch(): number {
    return (this.db.prepare('SELECT max(epoch) AS e FROM records').get() as {e: number | null}).e ?? 0
  }

  byHash(hash: Buffer): JournalRow | undefined {
    return this.db.prepare('SELECT * FROM records WHERE hash = ?').get(hash) as JournalRow | undefined
  }

  /** All rows in journal order, streamed. */
  * iterate(): IterableIterator<JournalRow> {
    yield * this.db.prepare('SELECT * FROM records ORDER BY jseq').iterate() as IterableIterator<JournalRow>
  }

  /** Rows after jseq, in journal order, streamed. */
  * iterateAfter(jseq: number): IterableIterator<JournalRow> {
    yield * this.db.prepare('SELECT * FROM records WHERE jseq > ? ORDER BY jseq').iterate(jseq) as IterableIterator<JournalRow>
  }

  /**
   * What an auditor needs of each row after jseq, as arrays (no row objects),
   * in journal order, streamed: [jseq, hash, salt length, salt ‖ record]
   * (one buffer: it is what the salted hash covers).
   */
  * auditRows(afterJseq = 0): IterableIterator<AuditRow> {
    yield * this.db.prepare(`${AUDIT_SELECT} WHERE jseq > ? ORDER BY jseq`).raw(true).iterate(afterJseq) as IterableIterator<AuditRow>
  }

  /**
   * auditRows as strings (no buffer per row: an auditor reads 100,000s):
   * [jseq, hash hex, salt hex, record text]. The text is the record's bytes
   * read as UTF-8; whoever hashes it must fall back to auditRow(jseq) for
   * a row whose bytes may not survive that (see audit/rows.ts).
   */
  * auditTextRows(afterJseq = 0): IterableIterator<AuditTextRow> {
    yield * this.db.prepare('SELECT jseq, lower(hex(hash)), hex(salt), CAST(record AS TEXT) FROM records WHERE jseq > ? ORDER BY jseq')
      .raw(true).iterate(afterJseq) as IterableIterator<AuditTextRow>
  }

  /** The text encoding of the database file ('UTF-8' for every journal PacioFS writes). */
  textEncoding(): string {
    return this.db.pragma('encoding', {simple: true}) as string
  }

  /** The most SQLite page cache this connection keeps (KiB). */
  pageCacheKib(): number {
    const n = this.db.pragma('cache_size', {simple: true}) as number
    return n < 0 ? -n : n * (this.db.pragma('page_size', {simple: true}) as number) / 1024
  }

  /** auditRows' columns of the row with this key. */
  auditRow(jseq: number): AuditRow | undefined {
    this.auditByJseq ??= this.db.prepare(`${AUDIT_SELECT} WHERE jseq = ?`).raw(true)
    return this.auditByJseq.get(jseq) as AuditRow | undefined
  }

  /** The same columns of the row with this hash. */
  auditRowByHash(hash: Buffer): AuditRow | undefined {
    this.auditByHash ??= this.db.prepare(`${AUDIT_SELECT} WHERE hash = ?`).raw(true)
    return this.auditByHash.get(hash) as AuditRow | undefined
  }

  /** A row by its key, or undefined. */
  row(jseq: number): JournalRow | undefined {
    this.byJseq ??= this.db.prepare('SELECT * FROM records WHERE jseq = ?')
    return this.byJseq.get(jseq) as JournalRow | undefined
  }

  /**
   * Notes, before the disk changes, that an operation will make a new entry at
   * path; settleIntent() drops the note once its record is journaled (or the
   * operation failed). A note left after a crash names an entry that may be on
   * disk without a record: the next mount undoes it (see intents.ts).
   */
  intend(op: string, path: string): number {
    this.intendStmt ??= this.db.prepare('INSERT INTO intents(op, path, at) VALUES (?, ?, ?)')
    return Number(this.intendStmt.run(op, path, Date.now()).lastInsertRowid)
  }

  settleIntent(id: number): void {
    this.settleStmt ??= this.db.prepare('DELETE FROM intents WHERE id = ?')
    this.settleStmt.run(id)
  }

  /** Intents left behind (by a crash), oldest first. */
  intents(): Array<{id: number; op: string; path: string; at: number}> {
    return this.db.prepare('SELECT id, op, path, at FROM intents ORDER BY id').all() as Array<{id: number; op: string; path: string; at: number}>
  }

  /** The op of the newest record whose path is this one (a full scan: for crash recovery only). */
  latestOpAt(path: string): string | undefined {
    return (this.db.prepare('SELECT op FROM records WHERE path = ? ORDER BY jseq DESC LIMIT 1').get(path) as {op: string} | undefined)?.op
  }

  maxJseq(): number {
    return (this.db.prepare('SELECT max(jseq) AS j FROM records').get() as {j: number | null}).j ?? 0
  }

  count(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM records').get() as {n: number}).n
  }

  /** Closes (after the checkpoint worker, if any, has closed its connection). */
  async close(): Promise<void> {
    const cp = this.checkpointer
    this.checkpointer = undefined
    if (cp) await cp.stop()
    if (this.db.open) this.db.close()
  }
}
