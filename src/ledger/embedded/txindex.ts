/**
 * The writer's side of the txid index (`txindex`, "is this payload on the
 * ledger, and in which block?"), written behind the blocks in key order.
 *
 * Why: txids are SHA-256 values, so inserting each block's txids into the
 * index B-tree as the block commits dirties about one index page per
 * transaction, and every dirty page is written to the WAL (and later into the
 * file) at each commit: 3 KB of writes per 200-byte payload once the index
 * outgrows a block. Instead, new txids wait in memory in SLOTS buckets by
 * their first byte, and a commit writes buckets (in turn, sorted) only while
 * more than `budget` txids wait: a page then takes several new entries per
 * write. How many depends on budget / index size alone (not on the block
 * size: with one bucket per block, small blocks wrote the same pages more
 * often), and the memory held is bounded by the budget, not by a number of
 * blocks of any size.
 *
 * Nothing is lost on a crash: the blocks themselves hold their txids and are
 * committed first. `meta.indexedTo` = E says every block up to epoch E is
 * fully in the index (absent: all blocks are, as in files written before this
 * scheme and in mirrors, which index inline). Opening for writing re-indexes
 * the blocks after it. Duplicate checks consult the waiting txids first, then
 * the index, so append() stays idempotent.
 *
 * The table itself is sealed into a generation of its own when it holds
 * `sealAt` entries, and a new one takes the next txids (txgens.ts): what a
 * txid costs to write is then bounded by the generation's size, not the
 * ledger's.
 */
import type Database from 'better-sqlite3'
import {DEFAULT_SEAL_AT, SealedGenerations, TxBloom, loadActive, saveActive} from './txgens.js'

/** Buckets by the txid's first byte, written in turn. */
const SLOTS = 256

/**
 * Txids that may wait in memory (default): about 81 bytes each (a Map entry
 * and its 32-character key), 5.3 MB in all. At 50,000 records/s in blocks of
 * ~1,000 on a fresh ledger: 718 bytes written per 200-byte record with this,
 * 964 with half of it, 2,507 with one of 16 slots per block.
 */
export const DEFAULT_INDEX_BUDGET = 65_536

/** The Map key of a raw 32-byte txid: its bytes as a one-byte (latin1) string, which sorts as the bytes do. */
export function txidKey(txid: Buffer): string {
  return txid.toString('latin1', 0, 32)
}

/** A JSON array of n zeros: json_each() over it yields the indexes 0..n-1, one row each. */
function indexes(n: number): string {
  return n === 0 ? '[]' : `[${'0,'.repeat(n - 1)}0]`
}

/** What one block's transaction wrote to the index; committed() adopts it in memory. */
export interface IndexWrite {
  slots: number[]
  sweepFrom: number
  mark?: number
  /** rows the active table gained */
  added: number
  /** the active table was sealed into this generation (after the `added` rows went in) */
  sealed?: ReturnType<SealedGenerations['seal']>
}

export class DeferredTxIndex {
  /** txid (txidKey) -> epoch, for every txid not yet in the table */
  private readonly waiting = new Map<string, number>()
  /** the waiting keys by first byte */
  private readonly slots: string[][] = Array.from({length: SLOTS}, () => [])
  private cursor = 0
  /** head epoch when the current sweep over the slots started: blocks up to it are indexed when it ends */
  private sweepFrom = -1
  private readonly ins: Database.Statement<[Buffer, number]>
  private readonly insMany: Database.Statement<[{ids: Buffer; epochs: string}]>
  private readonly lookupMany: Database.Statement<[{ids: Buffer; n: string}], {i: number; epoch: number}>
  private readonly setMark: Database.Statement<[string]>
  private readonly gens: SealedGenerations
  /** rows in the active table (`txindex`), and a filter over them for the day it is sealed */
  private activeCount: number
  private activeBloom: TxBloom

  constructor(
    private readonly db: Database.Database,
    private indexedTo: number,
    private readonly budget = DEFAULT_INDEX_BUDGET,
    private readonly sealAt = DEFAULT_SEAL_AT,
  ) {
    this.ins = db.prepare('INSERT INTO txindex(txid, epoch) VALUES (?, ?) ON CONFLICT DO NOTHING')
    // Many rows in one statement: one call into SQLite per block instead of one per txid
    // (measured with 500,000 entries: about 8 µs per txid one call each, 2-3 µs in one statement).
    // Row j of json_each is txid j of the blob.
    this.insMany = db.prepare(
      'INSERT INTO txindex(txid, epoch) SELECT substr(@ids, j.key * 32 + 1, 32), j.value FROM json_each(@epochs) AS j WHERE true ON CONFLICT DO NOTHING',
    )
    this.lookupMany = db.prepare(
      'SELECT j.key AS i, t.epoch AS epoch FROM json_each(@n) AS j CROSS JOIN txindex AS t ON t.txid = substr(@ids, j.key * 32 + 1, 32)',
    )
    this.setMark = db.prepare("INSERT INTO meta(key, value) VALUES ('indexedTo', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
    this.gens = new SealedGenerations(db)
    this.gens.load()
    const active = loadActive(db, sealAt)
    this.activeBloom = active.bloom
    this.activeCount = active.entries
  }

  /** How many sealed generations the index has (for tests and benches). */
  get generations(): number {
    return this.gens.count
  }

  /** The epoch up to which the table is complete (meta.indexedTo, or the head when absent). */
  static readMark(db: Database.Database, head: number): number {
    const row = db.prepare("SELECT value FROM meta WHERE key = 'indexedTo'").get() as {value: string} | undefined
    if (!row) return head
    const n = Number(row.value)
    return Number.isSafeInteger(n) && n >= 0 && n <= head ? n : -1
  }

  /**
   * At a writer's open. After a crash: put the txids of the blocks after the
   * mark into the table (one transaction; idempotent). Then the mark says
   * `head` and exists (from here on it lags behind the blocks).
   */
  catchUp(head: number, txidsOf: (epoch: number) => Buffer): void {
    const marked = this.db.prepare("SELECT 1 FROM meta WHERE key = 'indexedTo'").get() !== undefined
    if (marked && this.indexedTo >= head) return
    this.db.transaction(() => {
      for (let e = this.indexedTo + 1; e <= head; e++) {
        const all = txidsOf(e)
        // a generation sealed after the mark may hold some of them already
        const sealed: Array<number | undefined> = new Array(Math.floor(all.length / 32))
        this.gens.lookup(all, sealed)
        for (let i = 0; i < sealed.length; i++) {
          if (sealed[i] !== undefined) continue
          const txid = all.subarray(i * 32, i * 32 + 32)
          this.activeCount += this.ins.run(txid, e).changes
          this.activeBloom.add(txid, 0)
        }
      }
      this.setMark.run(String(head))
    })()
    this.indexedTo = head
  }

  /**
   * For each txid of `ids` (32 bytes each; keys[i] = txidKey of txid i): the
   * epoch of the block it is in already, or undefined (a sparse array). The
   * txids waiting in memory first, then the table, in one query. Call inside
   * the commit transaction.
   */
  priorEpochs(ids: Buffer, keys: readonly string[]): Array<number | undefined> {
    const out: Array<number | undefined> = new Array(keys.length)
    for (let i = 0; i < keys.length; i++) {
      const e = this.waiting.get(keys[i])
      if (e !== undefined) out[i] = e
    }
    if (keys.length > 0) for (const r of this.lookupMany.all({ids, n: indexes(keys.length)})) out[r.i] ??= r.epoch
    this.gens.lookup(ids, out)
    return out
  }

  /**
   * Inside the transaction of the block after `prevHead`, which adds
   * `incoming` txids: write slots, in turn, while more than the budget would
   * wait (and, each time a sweep over all slots ends, move the mark to where
   * the sweep started: every block up to there is then indexed); then seal the
   * active table if it holds sealAt entries. Nothing in memory changes until
   * committed() is called with the result, so a transaction that rolls back
   * leaves this object as it was (but for filter bits, which only cost a
   * lookup).
   */
  writeNext(prevHead: number, incoming: number): IndexWrite {
    const slots: number[] = []
    let added = 0
    let sweepFrom = this.sweepFrom
    let mark: number | undefined
    let left = this.waiting.size + incoming
    for (let slot = this.cursor; left > this.budget && slots.length < SLOTS; slot = (slot + 1) % SLOTS) {
      if (slot === 0) sweepFrom = prevHead
      const keys = this.slots[slot]
      added += this.insert(keys.sort())
      left -= keys.length
      slots.push(slot)
      if (slot === SLOTS - 1 && sweepFrom > this.indexedTo) {
        mark = sweepFrom
        this.setMark.run(String(mark))
      }
    }
    const entries = this.activeCount + added
    const sealed = entries >= this.sealAt ? this.gens.seal(entries, this.activeBloom) : undefined
    return {slots, sweepFrom, mark, added, sealed}
  }

  /** After the block's transaction committed: forget the written slots, keep the block's new txids waiting. */
  committed(written: IndexWrite, epoch: number, keys: readonly string[]): void {
    for (const slot of written.slots) {
      for (const key of this.slots[slot]) this.waiting.delete(key)
      this.slots[slot] = []
      this.cursor = (slot + 1) % SLOTS
    }
    this.sweepFrom = written.sweepFrom
    if (written.mark !== undefined) this.indexedTo = written.mark
    this.activeCount += written.added
    if (written.sealed) {
      this.gens.adopt(written.sealed)
      this.activeCount = 0
      this.activeBloom = TxBloom.forCapacity(this.sealAt)
    }
    for (const key of keys) {
      this.waiting.set(key, epoch)
      this.slots[key.charCodeAt(0)].push(key)
    }
  }

  /** Write everything that waits and mark the table complete up to `head`, and keep the active table's filter for the next open (at close). */
  writeAll(head: number): void {
    if (this.indexedTo < head || this.waiting.size > 0) {
      let added = 0
      this.db.transaction(() => {
        for (const keys of this.slots) added += this.insert(keys.sort())
        this.setMark.run(String(head))
      })()
      this.activeCount += added
      this.waiting.clear()
      for (let s = 0; s < SLOTS; s++) this.slots[s] = []
      this.indexedTo = head
      this.cursor = 0
    }
    saveActive(this.db, this.activeCount, this.activeBloom)
  }

  /** The waiting txids of `keys` into the active table in one statement, in the order given; the rows it gained. */
  private insert(keys: readonly string[]): number {
    if (keys.length === 0) return 0
    const ids = Buffer.allocUnsafe(keys.length * 32)
    const epochs: number[] = new Array(keys.length)
    for (let i = 0; i < keys.length; i++) {
      ids.write(keys[i], i * 32, 32, 'latin1')
      epochs[i] = this.waiting.get(keys[i])!
      this.activeBloom.add(ids, i * 32)
    }
    return this.insMany.run({ids, epochs: JSON.stringify(epochs)}).changes
  }

  /** How many txids wait in memory (for tests). */
  get waitingCount(): number {
    return this.waiting.size
  }
}
