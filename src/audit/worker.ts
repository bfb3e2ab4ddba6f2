/**
 * A verify worker thread (started by pool.ts). It receives job sets: a list
 * of items, the same list sent to every worker, with a shared counter. Each
 * worker claims the next item with an atomic add, so the work balances itself
 * across the pool without the main thread (which is busy checking the
 * journal meanwhile), and answers in batches: one message per BATCH items, or
 * sooner after BATCH_BYTES bytes were hashed.
 *
 *  scan     item = an absolute path: lstat, xattrs (name -> sha256 of the
 *           value), then a regular file's sha256 or a symlink's target.
 *  history  item = a content digest: the stored version's manifest and each
 *           chunk, checked (HistoryStore.check).
 */
import {hash as oneShot, createHash} from 'node:crypto'
import fs from 'node:fs'
import {parentPort, workerData} from 'node:worker_threads'
import {HistoryStore, type HistoryProblem} from '../history/store.js'
import {sys} from '../volume/sys.js'

/** [type, mode, uid, gid, size, digest or link target, xattrs, error] */
export type ScanResult = [string, number, number, number, number, string | undefined, Array<[string, string]> | undefined, string | undefined]
export type HistoryResult = HistoryProblem | 0

export interface JobSet {
  id: number
  kind: 'scan' | 'history'
  items: string[]
  claim: SharedArrayBuffer
}

export interface Answer {
  id: number
  idx: number[]
  out: Array<ScanResult | HistoryResult>
  bytes: number
}

const BATCH = 256
const BATCH_BYTES = 32 << 20
const buf = Buffer.allocUnsafe(1 << 20)
const {O_RDONLY, O_NOFOLLOW} = fs.constants

function typeOf(st: fs.Stats): string {
  if (st.isFile()) return 'file'
  if (st.isDirectory()) return 'dir'
  if (st.isSymbolicLink()) return 'symlink'
  if (st.isFIFO()) return 'fifo'
  if (st.isCharacterDevice()) return 'chr'
  if (st.isBlockDevice()) return 'blk'
  return 'sock'
}

function xattrsOf(p: string): Array<[string, string]> | undefined {
  let names: string[]
  try {
    names = sys.llistxattr(p)
  } catch {
    return undefined
  }

  if (names.length === 0) return undefined
  const out: Array<[string, string]> = []
  for (const n of names) {
    try {
      out.push([n, oneShot('sha256', sys.lgetxattr(p, n), 'hex')])
    } catch { /* vanished */ }
  }

  return out
}

/** A file's sha256 and length, read to its end; `hint` (its lstat size) lets a small file take one read. */
function hashFile(p: string, hint: number): {digest: string; size: number} {
  const fd = fs.openSync(p, O_RDONLY | O_NOFOLLOW)
  try {
    let n = 0
    if (hint < buf.length) {
      // a short read of a regular file is its end: most files take one read and a one-shot hash
      n = fs.readSync(fd, buf, 0, hint + 1, null)
      if (n <= hint) return {digest: oneShot('sha256', buf.subarray(0, n), 'hex'), size: n}
    }

    const h = createHash('sha256').update(buf.subarray(0, n))
    let size = n
    while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) {
      h.update(buf.subarray(0, n))
      size += n
    }

    return {digest: h.digest('hex'), size}
  } finally {
    fs.closeSync(fd)
  }
}

function scanOne(p: string): {r: ScanResult; bytes: number} {
  let st: fs.Stats
  try {
    st = fs.lstatSync(p)
  } catch (error) {
    return {r: ['unknown', 0, -1, -1, 0, undefined, undefined, (error as NodeJS.ErrnoException).code ?? String(error)], bytes: 0}
  }

  const type = typeOf(st)
  const xattrs = xattrsOf(p)
  let extra: string | undefined
  let err: string | undefined
  let bytes = 0
  try {
    if (type === 'symlink') extra = fs.readlinkSync(p)
    else if (type === 'file') {
      const h = hashFile(p, st.size)
      extra = h.digest
      bytes = h.size
    }
  } catch (error) {
    err = (error as NodeJS.ErrnoException).code ?? String(error)
  }

  return {r: [type, st.mode, st.uid, st.gid, st.size, extra, xattrs, err], bytes}
}

const store = new HistoryStore((workerData as {historyDir: string}).historyDir)
const checkedChunks = new Map<string, HistoryProblem | null>()

function historyOne(digest: string): {r: HistoryResult; bytes: number} {
  // versions come deduplicated: this only saves re-reading chunks shared by large versions, so a bounded memory will do
  if (checkedChunks.size > 8192) checkedChunks.clear()
  const problem = store.check(digest, checkedChunks)
  return {r: problem ?? 0, bytes: 0}
}

parentPort!.on('message', (set: JobSet) => {
  const claim = new Int32Array(set.claim)
  const one = set.kind === 'scan' ? scanOne : historyOne
  let idx: number[] = []
  let out: Answer['out'] = []
  let bytes = 0
  const send = () => {
    parentPort!.postMessage({id: set.id, idx, out, bytes} satisfies Answer)
    idx = []
    out = []
    bytes = 0
  }

  for (let i = Atomics.add(claim, 0, 1); i < set.items.length; i = Atomics.add(claim, 0, 1)) {
    const {r, bytes: b} = one(set.items[i])
    idx.push(i)
    out.push(r)
    bytes += b
    if (idx.length >= BATCH || bytes >= BATCH_BYTES) send()
  }

  if (idx.length > 0) send()
})
