/**
 * Verify's check of the history store: every version a record being verified
 * names (create, write, truncate with a digest) must be in the store, intact:
 * its manifest present and well-formed, each chunk present and hashing to its
 * name (a version of one chunk: that chunk, with the recorded size, hashing
 * to the version's digest). Each distinct version is checked once per verify, on the worker
 * threads (after the scan of the disk: small versions as the journal pass
 * finds them, the large ones at its end, largest first, so that the cores
 * finish together); the cost follows the records being verified (all with
 * --full, only the new ones otherwise), not the number of records naming a
 * version.
 */
import type {HistoryProblem} from '../history/store.js'
import type {FsRecord} from '../volume/types.js'
import type {WorkerPool} from './pool.js'
import type {Divergence, RecordRef} from './types.js'

/** Versions per job set (each worker holds a set's list while it works on it). */
const SET_SIZE = 4096
/** Versions up to this size are handed to the workers as the journal pass finds them; larger ones at its end, largest first. */
const STREAM_MAX = 1 << 20

/** Looks a record up again by its journal row, for the (rare) report of a problem. */
export type RecordLookup = (jseq: number, order: number) => {record: FsRecord; ref: RecordRef} | undefined

/**
 * The versions to check: per digest [size, then jseq and ledger order of each
 * record naming it]. With a pool, each new small version goes to the workers
 * in sets while the journal pass goes on (the workers are done with the scan
 * by then and would otherwise wait for the main thread); finish() sends the
 * rest, largest first (so that the workers end together), and waits.
 */
export class HistoryJobs {
  /** digest -> its slot; per slot the size and the first record naming it (jseq, ledger order); more records in `more` */
  private readonly slots = new Map<string, number>()
  private readonly sizes: number[] = []
  private readonly firstJseq: number[] = []
  private readonly firstOrder: number[] = []
  private readonly more = new Map<number, number[]>() // slot -> jseq, order, jseq, order, ... of the later records
  private readonly problems = new Map<string, HistoryProblem>()
  private readonly runs: Array<Promise<void>> = []
  private pending: string[] = []
  private pendingSizes: number[] = []

  /** `pool`: undefined when there is no history store to check (only the records are collected). */
  constructor(private readonly pool?: WorkerPool) {}

  /** Distinct versions collected. */
  get size(): number {
    return this.slots.size
  }

  add(digest: string, size: number, jseq: number, order: number): void {
    const slot = this.slots.get(digest)
    if (slot !== undefined) {
      const m = this.more.get(slot)
      if (m) m.push(jseq, order)
      else this.more.set(slot, [jseq, order])
      return
    }

    this.slots.set(digest, this.sizes.length)
    this.sizes.push(size)
    this.firstJseq.push(jseq)
    this.firstOrder.push(order)
    if (this.pool && size <= STREAM_MAX) {
      this.pending.push(digest)
      this.pendingSizes.push(size)
      if (this.pending.length >= SET_SIZE) this.send()
    }
  }

  /** jseq, order, jseq, order, ... of every record naming the version in this slot, in the order they came. */
  private recordsOf(slot: number): number[] {
    return [this.firstJseq[slot], this.firstOrder[slot], ...(this.more.get(slot) ?? [])]
  }

  private send(): void {
    const set = this.pending
    const sizes = this.pendingSizes
    this.pending = []
    this.pendingSizes = []
    if (set.length === 0 || !this.pool) return
    const run = this.pool.run('history', set, (idx, out) => {
      for (let k = 0; k < idx.length; k++) if (out[k]) this.problems.set(set[idx[k]], out[k] as HistoryProblem)
    }, sizes)
    run.catch(() => {}) // awaited in finish()
    this.runs.push(run)
  }

  /** Checks what is left, waits for every set, and returns one finding per path and version, in ledger order. */
  async finish(lookup: RecordLookup): Promise<Divergence[]> {
    if (!this.pool) return []
    this.send()
    const large = [...this.slots].filter(([, k]) => this.sizes[k] > STREAM_MAX).sort((a, b) => this.sizes[b[1]] - this.sizes[a[1]]).map(([d]) => d)
    for (let i = 0; i < large.length; i += SET_SIZE) {
      this.pending = large.slice(i, i + SET_SIZE)
      this.pendingSizes = this.pending.map(d => this.sizes[this.slots.get(d)!])
      this.send()
    }

    await Promise.all(this.runs)
    return this.findings(lookup)
  }

  private findings(lookup: RecordLookup): Divergence[] {
    // one finding per path and version, at the first record (in ledger order) that names it
    const found: Array<{order: number; d: Divergence}> = []
    for (const [digest, problem] of this.problems) {
      const recs = this.recordsOf(this.slots.get(digest)!)
      const first = new Map<string, number>() // path -> index in found
      for (let i = 0; i < recs.length; i += 2) {
        const hit = lookup(recs[i], recs[i + 1])
        if (!hit) continue
        const {record: r, ref} = hit
        const d: Divergence = {path: r.path, kind: problem.kind, expected: digest, found: problem.kind === 'history-missing' ? 'absent' : 'altered', record: ref,
          detail: `the version recorded at epoch ${ref.epoch} (${r.op}, ${r.size ?? '?'} bytes): ${problem.detail}`}
        const k = first.get(r.path)
        if (k === undefined) {
          first.set(r.path, found.length)
          found.push({order: recs[i + 1], d})
        } else if (recs[i + 1] < found[k].order) found[k] = {order: recs[i + 1], d}
      }
    }

    return found.sort((a, b) => a.order - b.order).map(f => f.d)
  }
}
