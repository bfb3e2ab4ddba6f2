/**
 * Verify's check of the history store: every version a record being verified
 * names (create, write, truncate with a digest) must be in the store, intact:
 * its manifest present and well-formed, each chunk present and hashing to its
 * name. Each distinct chunk is read once per verify, so the cost follows the
 * records being verified (all with --full, only the new ones otherwise), not
 * the number of versions sharing a chunk.
 */
import fs from 'node:fs'
import {HistoryStore, type HistoryProblem} from '../history/store.js'
import type {FsRecord} from '../volume/types.js'
import type {Divergence, RecordRef} from './types.js'

export async function checkHistory(dir: string, records: Array<{record: FsRecord; ref: RecordRef}>, within: (p: string) => boolean): Promise<Divergence[]> {
  if (!fs.existsSync(dir)) return [] // a volume from before the history store
  const store = new HistoryStore(dir)
  const chunks = new Map<string, HistoryProblem | null>()
  const versions = new Map<string, HistoryProblem | undefined>()
  const reported = new Set<string>()
  const out: Divergence[] = []
  for (const {record: r, ref} of records) {
    if (r.digest === undefined || !within(r.path) || !(r.op === 'create' || r.op === 'write' || r.op === 'truncate')) continue
    if (!versions.has(r.digest)) versions.set(r.digest, await store.check(r.digest, chunks))
    const problem = versions.get(r.digest)
    const key = `${r.path}\0${r.digest}`
    if (!problem || reported.has(key)) continue
    reported.add(key)
    out.push({path: r.path, kind: problem.kind, expected: r.digest, found: problem.kind === 'history-missing' ? 'absent' : 'altered', record: ref,
      detail: `the version recorded at epoch ${ref.epoch} (${r.op}, ${r.size ?? '?'} bytes): ${problem.detail}`})
  }

  return out
}
