/**
 * Sealed generations of the txid index (see txindex.ts), so that the cost of
 * indexing one more txid does not grow with the ledger.
 *
 * The index's table (`txindex`) takes txids in random key order; once it
 * holds many pages, each written txid dirties a page of its own, and every
 * dirty page is written twice (WAL, then the file). So when the table holds
 * `sealAt` entries it is renamed to `txindex_<gen>` and never written again,
 * and a new, empty `txindex` takes the next txids: writing costs what a table
 * of at most `sealAt` entries costs, however long the ledger is.
 *
 * Looking a txid up must then ask every generation. A Bloom filter per
 * sealed generation (in `txseal`, held in memory: 1 MiB per 2^20 txids)
 * answers "certainly not here" for all but about 2 % of the txids that are not
 * in it, so a lookup reads a sealed table only for those and for the txids
 * that are there (duplicates, which are rare). The filter's bit positions are
 * words of the txid itself: txids are SHA-256 values.
 */
import type Database from 'better-sqlite3'

/** Entries per generation (default): the active table never outgrows this. */
export const DEFAULT_SEAL_AT = 1 << 20

/** Bit positions per txid: six 32-bit words of the txid (bytes 4..27). */
const PROBES = 6

/** A Bloom filter over txids of at most `capacity` entries: 8 bits per entry, rounded up to a power of two. */
export class TxBloom {
  private readonly mask: number

  constructor(readonly bits: Buffer) {
    const n = bits.length * 8
    if (n < 8 || (n & (n - 1)) !== 0) throw new Error(`Bloom filter of ${bits.length} bytes: not a power of two`)
    this.mask = n - 1
  }

  static forCapacity(capacity: number): TxBloom {
    let bytes = 1
    while (bytes < capacity) bytes *= 2
    return new TxBloom(Buffer.alloc(bytes))
  }

  /** Set the bits of the txid at `ids[at..at+32)`. */
  add(ids: Buffer, at: number): void {
    for (let p = 0; p < PROBES; p++) {
      const bit = ids.readUInt32LE(at + 4 + 4 * p) & this.mask
      this.bits[bit >>> 3] |= 1 << (bit & 7)
    }
  }

  /** False: the txid at `ids[at..at+32)` was never added. True: it may have been. */
  mayHave(ids: Buffer, at: number): boolean {
    for (let p = 0; p < PROBES; p++) {
      const bit = ids.readUInt32LE(at + 4 + 4 * p) & this.mask
      if ((this.bits[bit >>> 3] & (1 << (bit & 7))) === 0) return false
    }
    return true
  }
}

/** txseal: one row per sealed generation. txactive: the active table's filter, saved by a clean close for the next open only. */
export const SEAL_SCHEMA = `CREATE TABLE IF NOT EXISTS txseal(gen INTEGER PRIMARY KEY, entries INTEGER NOT NULL, bloom BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS txactive(entries INTEGER NOT NULL, bloom BLOB NOT NULL)`

export const sealedTable = (gen: number) => `txindex_${gen}`

/** Files of format version 1 (read as they are) have no txseal table: no generations. */
function hasSealTable(db: Database.Database): boolean {
  return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'txseal'").get() !== undefined
}

interface Generation {
  gen: number
  entries: number
  bloom: TxBloom
  lookupMany: Database.Statement<[{ids: Buffer; at: string}], {i: number; epoch: number}>
}

/** The sealed generations of one ledger file, newest first. */
export class SealedGenerations {
  private gens: Generation[] = []

  constructor(private readonly db: Database.Database) {}

  /** Read `txseal` (absent in files written before generations: none then). */
  load(): void {
    if (!hasSealTable(this.db)) return
    const rows = this.db.prepare('SELECT gen, entries, bloom FROM txseal ORDER BY gen DESC').all() as Array<{gen: number; entries: number; bloom: Buffer}>
    this.gens = rows.map((r) => this.generation(r.gen, r.entries, new TxBloom(r.bloom)))
  }

  get count(): number {
    return this.gens.length
  }

  /** The generation number the next seal takes. */
  get next(): number {
    return this.gens.length === 0 ? 1 : this.gens[0].gen + 1
  }

  /**
   * For each txid i of `ids` (32 bytes each) with out[i] still undefined: its
   * epoch if a sealed generation holds it. One statement per generation, for
   * the txids its filter does not rule out.
   */
  lookup(ids: Buffer, out: Array<number | undefined>): void {
    for (const g of this.gens) {
      const maybe: number[] = []
      for (let i = 0; i < out.length; i++) if (out[i] === undefined && g.bloom.mayHave(ids, i * 32)) maybe.push(i)
      if (maybe.length === 0) continue
      for (const r of g.lookupMany.all({ids, at: JSON.stringify(maybe)})) out[r.i] ??= r.epoch
    }
  }

  /**
   * Inside a transaction: rename the active table to the next generation's,
   * store its filter, and create a new, empty active table. In memory nothing
   * changes until adopt() is called (after the commit).
   */
  seal(entries: number, bloom: TxBloom): Generation {
    const gen = this.next
    this.db.exec(`ALTER TABLE txindex RENAME TO ${sealedTable(gen)}`)
    this.db.exec('CREATE TABLE txindex(txid BLOB PRIMARY KEY, epoch INTEGER NOT NULL) WITHOUT ROWID')
    this.db.prepare('INSERT INTO txseal(gen, entries, bloom) VALUES (?, ?, ?)').run(gen, entries, bloom.bits)
    return this.generation(gen, entries, bloom)
  }

  adopt(g: Generation): void {
    this.gens.unshift(g)
  }

  private generation(gen: number, entries: number, bloom: TxBloom): Generation {
    // Row j of json_each(@at) names txid number j.value of the blob.
    const lookupMany = this.db.prepare(
      `SELECT j.value AS i, t.epoch AS epoch FROM json_each(@at) AS j CROSS JOIN ${sealedTable(gen)} AS t ON t.txid = substr(@ids, j.value * 32 + 1, 32)`,
    ) as Generation['lookupMany']
    return {gen, entries, bloom, lookupMany}
  }
}

/**
 * For an integrity check (any connection, inside one read transaction): the
 * rows of the active table and of every sealed generation, or what is wrong
 * with a generation (its row count differs from `txseal`, or its filter
 * rules out a txid it holds, which would let a duplicate through).
 */
/**
 * The active table's entries and filter, read at a writer's open: the filter a
 * clean close saved if the table still holds as many entries (taken out of the
 * file, so that a later open after a crash cannot use it), else rebuilt from
 * the table (about 1 s per million entries here).
 */
export function loadActive(db: Database.Database, capacity: number): {entries: number; bloom: TxBloom} {
  const entries = (db.prepare('SELECT count(*) AS n FROM txindex').get() as {n: number}).n
  const saved = db.transaction(() => {
    const row = db.prepare('SELECT entries, bloom FROM txactive').get() as {entries: number; bloom: Buffer} | undefined
    db.prepare('DELETE FROM txactive').run()
    return row
  })()
  if (saved && saved.entries === entries && saved.bloom.length === TxBloom.forCapacity(capacity).bits.length) return {entries, bloom: new TxBloom(saved.bloom)}
  const bloom = TxBloom.forCapacity(capacity)
  for (const txid of db.prepare('SELECT txid FROM txindex').pluck().iterate() as IterableIterator<Buffer>) bloom.add(txid, 0)
  return {entries, bloom}
}

/** At a clean close, after everything waiting is in the active table: keep its filter for the next open. */
export function saveActive(db: Database.Database, entries: number, bloom: TxBloom): void {
  db.transaction(() => {
    db.prepare('DELETE FROM txactive').run()
    db.prepare('INSERT INTO txactive(entries, bloom) VALUES (?, ?)').run(entries, bloom.bits)
  })()
}

export function countIndexed(db: Database.Database): {rows: number; problem?: string} {
  let rows = (db.prepare('SELECT count(*) AS n FROM txindex').get() as {n: number}).n
  if (!hasSealTable(db)) return {rows}
  for (const g of db.prepare('SELECT gen, entries, bloom FROM txseal ORDER BY gen').all() as Array<{gen: number; entries: number; bloom: Buffer}>) {
    let bloom: TxBloom
    try {
      bloom = new TxBloom(g.bloom)
    } catch (error) {
      return {rows, problem: `txid index generation ${g.gen}: ${(error as Error).message}`}
    }
    let n = 0
    for (const txid of db.prepare(`SELECT txid FROM ${sealedTable(g.gen)}`).pluck().iterate() as IterableIterator<Buffer>) {
      if (txid.length !== 32 || !bloom.mayHave(txid, 0)) return {rows, problem: `txid index generation ${g.gen}: its filter misses txid ${txid.toString('hex')}`}
      n++
    }
    if (n !== g.entries) return {rows, problem: `txid index generation ${g.gen} holds ${n} entries, txseal says ${g.entries}`}
    rows += n
  }
  return {rows}
}
