/**
 * A first verify's journal rows, read and checked on a worker thread of
 * their own. Reading 200,000 rows out of SQLite and hashing each
 * salt ‖ record was most of the main thread's journal pass; the worker does
 * both (RowReader, the same verdicts), a range of jseqs at a time, while the
 * main thread checks the ledger, and ends with the pass (so that its memory
 * is gone before the comparison, where verify's memory peaks). The main
 * thread gets each range as one batch: the rows' keys, hash columns,
 * verdicts and one string of their texts, and only parses and replays. At
 * most AHEAD ranges are out at once, so the batches waiting for the main
 * thread stay small; a range is small enough (RANGE) that its string dies
 * young.
 */
import {WorkerPool} from './pool.js'
import type {WorkerSetup} from './worker.js'
import type {RowReader} from './rows.js'

/** Journal rows per range. */
export const RANGE = 256
/** A worker's buffer for the texts of a range (grown as needed) */
let scratch = Buffer.allocUnsafe(1 << 17)
/** Ranges asked for before the first is taken. */
const AHEAD = 8

/** The rows of one range, as RowReader checked them. */
export interface JournalBatch {
  jseqs: number[]
  /** each row's hash column, 32 bytes at 32 * i (rows whose column is not 32 bytes long: in `odd`) */
  hashes: Uint8Array
  /** row index -> its hash column, when not 32 bytes */
  odd: Array<[number, Uint8Array]>
  /** 1: sha256(salt ‖ record) equals the hash column */
  ok: Uint8Array
  /** the texts of all rows, one after another; lens[i] UTF-16 units each */
  texts: string
  lens: number[]
  /** sha256(salt ‖ record) in hex of each row that is not ok, in row order */
  actual: string[]
}

/** One range (after, upTo], checked by reader (on a worker). */
export function readBatch(reader: RowReader, after: number, upTo: number): JournalBatch {
  const jseqs: number[] = []
  const lens: number[] = []
  // each text goes into one scratch buffer at once, which becomes the batch's one string: no string per row lives
  // long enough to be promoted (the worker's heap stays small), and no buffer per batch waits for a collection
  let used = 0
  const actual: string[] = []
  const odd: Array<[number, Uint8Array]> = []
  let hashes = new Uint8Array(32 * Math.min(RANGE, Math.max(1, upTo - after)))
  let ok = new Uint8Array(hashes.length / 32)
  for (const row of reader.after(after, upTo)) {
    const i = jseqs.length
    if (i === ok.length) {
      const h = new Uint8Array(hashes.length * 2)
      h.set(hashes)
      hashes = h
      const o = new Uint8Array(ok.length * 2)
      o.set(ok)
      ok = o
    }

    jseqs.push(row.jseq)
    if (row.hash.length === 32) hashes.set(row.hash, 32 * i)
    else odd.push([i, Uint8Array.from(row.hash)])
    ok[i] = row.ok ? 1 : 0
    if (!row.ok) actual.push(row.actual)
    const need = Buffer.byteLength(row.text)
    if (used + need > scratch.length) {
      const t = Buffer.allocUnsafe(Math.max(scratch.length * 2, used + need))
      scratch.copy(t, 0, 0, used)
      scratch = t
    }

    used += scratch.write(row.text, used)
    lens.push(row.text.length)
  }

  return {jseqs, hashes: hashes.slice(0, 32 * jseqs.length), odd, ok: ok.slice(0, jseqs.length), texts: scratch.toString('utf8', 0, used), lens, actual}
}

/** The rows after 0 up to maxJseq, range by range in journal order, read on a worker started for them (`pool`: on that pool instead). */
export async function * journalBatches(journal: NonNullable<WorkerSetup['journal']>, maxJseq: number, pool?: WorkerPool): AsyncGenerator<JournalBatch> {
  const own = pool ? undefined : new WorkerPool(1, '', journal)
  const on = (pool ?? own)!
  try {
    yield * batches(on, maxJseq)
  } finally {
    await own?.close()
  }
}

async function * batches(pool: WorkerPool, maxJseq: number): AsyncGenerator<JournalBatch> {
  const runs: Array<Promise<JournalBatch>> = []
  let next = 0
  const ask = () => {
    if (next >= maxJseq) return
    const after = next
    next = Math.min(maxJseq, next + RANGE)
    let batch: JournalBatch | undefined
    const run = pool.run('journal', [`${after}:${next}`], (_idx, out) => {
      batch = out[0] as JournalBatch
    }).then(() => batch!)
    run.catch(() => {}) // awaited in turn below
    runs.push(run)
  }

  for (let k = 0; k < AHEAD; k++) ask()
  while (runs.length > 0) {
    const batch = await runs.shift()!
    ask()
    yield batch
  }
}
