/**
 * Verify's check of the history store: every version a record being verified
 * names (create, write, truncate with a digest) must be in the store, intact:
 * its manifest present and well-formed, each chunk present and hashing to its
 * name. Each distinct version is checked once per verify, on the worker
 * threads (largest first, so that the two cores finish together), after the
 * scan of the disk; the cost follows the records being verified (all with
 * --full, only the new ones otherwise), not the number of records naming a
 * version.
 */
import type {HistoryProblem} from '../history/store.js'
import type {FsRecord} from '../volume/types.js'
import type {WorkerPool} from './pool.js'
import type {Divergence, RecordRef} from './types.js'

/** Versions per job set (each worker holds a set's list while it works on it). */
const SET_SIZE = 4096

/** The versions to check: per digest [size, then jseq and ledger order of each record naming it]. */
export class HistoryJobs {
  readonly byDigest = new Map<string, number[]>()

  add(digest: string, size: number, jseq: number, order: number): void {
    const v = this.byDigest.get(digest)
    if (v) v.push(jseq, order)
    else this.byDigest.set(digest, [size, jseq, order])
  }
}

/** Looks a record up again by its journal row, for the (rare) report of a problem. */
export type RecordLookup = (jseq: number, order: number) => {record: FsRecord; ref: RecordRef} | undefined

export async function checkHistory(pool: WorkerPool, jobs: HistoryJobs, lookup: RecordLookup): Promise<Divergence[]> {
  const bySize = [...jobs.byDigest].map(([digest, v]) => ({digest, size: v[0]}))
  bySize.sort((a, b) => b.size - a.size)
  const digests = bySize.map(v => v.digest)
  const problems = new Map<string, HistoryProblem>()
  const runs: Array<Promise<void>> = []
  for (let i = 0; i < digests.length; i += SET_SIZE) {
    const set = digests.slice(i, i + SET_SIZE)
    runs.push(pool.run('history', set, (idx, out) => {
      for (let k = 0; k < idx.length; k++) if (out[k]) problems.set(set[idx[k]], out[k] as HistoryProblem)
    }))
  }

  await Promise.all(runs)

  // one finding per path and version, at the first record (in ledger order) that names it
  const found: Array<{order: number; d: Divergence}> = []
  for (const [digest, problem] of problems) {
    const recs = jobs.byDigest.get(digest)!
    const first = new Map<string, number>() // path -> index in found
    for (let i = 1; i < recs.length; i += 2) {
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
