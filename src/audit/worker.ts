/**
 * A verify worker thread (started by pool.ts). It receives job sets: a list
 * of items, the same list sent to every worker, with a shared counter. Each
 * worker claims the next GROUP items with an atomic add, so the work
 * balances itself across the pool without the main thread (which is busy
 * checking the journal meanwhile), and answers in batches: one message per
 * BATCH items, or sooner after BATCH_BYTES bytes were hashed. A group's
 * system calls are made by one native call (sys.readFiles), which reads the
 * small files into one buffer; JS then only hashes.
 *
 *  scan     item = an absolute path: lstat, xattrs (name -> sha256 of the
 *           value), then a regular file's sha256 or a symlink's target.
 *  history  item = a content digest (and the size its record gives): the
 *           stored version checked, with the store's own verdict
 *           (HistoryStore.check) for anything that is not intact. A version
 *           of one chunk is one read of that chunk (the store keeps no
 *           manifest for it); a larger one its manifest, then each chunk.
 */
import {hash as oneShot, createHash} from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import {parentPort, workerData} from 'node:worker_threads'
import {CHUNK_SIZE, EMPTY_DIGEST, HistoryError, HistoryStore, type HistoryProblem, type Manifest} from '../history/store.js'
import {openQuietSync} from '../quiet-open.js'
import {READ_LSTAT, READ_META, sys} from '../volume/sys.js'

/** [type, mode, uid, gid, size, digest or link target, xattrs, error] */
export type ScanResult = [string, number, number, number, number, string | undefined, Array<[string, string]> | undefined, string | undefined]
export type HistoryResult = HistoryProblem | 0

export interface JobSet {
  id: number
  kind: 'scan' | 'history'
  items: string[]
  /** history: the size of each version as its record gives it (0: not known) */
  sizes?: number[]
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
const HEX64 = /^[0-9a-f]{64}$/

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
  const fd = openQuietSync(p, O_RDONLY | O_NOFOLLOW)
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

const store = new HistoryStore((workerData as {historyDir: string}).historyDir)
// store.manifestPath and chunkPath without path.join's normalising (one call per file): digests and chunk hashes are 64 hex digits here
const manifestPath = (digest: string) => `${store.manifestDir}/${digest.slice(0, 2)}/${digest}.json`
const chunkPath = (hash: string) => `${store.chunkDir}/${hash.slice(0, 2)}/${hash}`
const checkedChunks = new Map<string, HistoryProblem | null>()

/**
 * Items a worker claims at once: one native readFiles call makes their
 * system calls (no JS call per lstat, open, read, close), and the bytes of
 * the small files land in one buffer to be hashed from there.
 */
const GROUP = 32
const data = Buffer.allocUnsafe(1 << 20) // > CHUNK_SIZE + 1: any chunk fits (larger files stream through buf)
const meta = new Float64Array(GROUP * READ_META)
const ERRNO = new Map(Object.entries(os.constants.errno).map(([code, n]) => [n, code]))
const codeOf = (errno: number) => ERRNO.get(errno) ?? `errno ${errno}`
type Emit = (i: number, r: ScanResult | HistoryResult, bytes: number) => void
type Group = (items: string[], start: number, end: number, emit: Emit, sizes?: number[]) => void

const S_IFMT = 0o170000
const TYPES = new Map([[0o100000, 'file'], [0o040000, 'dir'], [0o120000, 'symlink'], [0o010000, 'fifo'], [0o020000, 'chr'], [0o060000, 'blk'], [0o140000, 'sock']])

/** scanOne for items[start..end), the system calls made in native code; what it leaves (large files, xattrs, links) as scanOne does it. */
function scanGroup(items: string[], start: number, end: number, emit: Emit): void {
  for (let k = start; k < end;) {
    const reached = sys.readFiles(items, k, end, READ_LSTAT, null, data, meta)
    for (let j = k; j < reached; j++) {
      const o = (j - k) * READ_META
      if (meta[o] !== 0) {
        emit(j, ['unknown', 0, -1, -1, 0, undefined, undefined, codeOf(meta[o])], 0)
        continue
      }

      const p = items[j]
      const mode = meta[o + 1]
      const size = meta[o + 4]
      const type = TYPES.get(mode & S_IFMT) ?? 'sock'
      const xattrs = meta[o + 5] > 0 ? xattrsOf(p) : undefined
      let extra: string | undefined
      let err: string | undefined
      let bytes = 0
      try {
        if (type === 'symlink') extra = fs.readlinkSync(p)
        else if (type === 'file') {
          if (meta[o + 8] !== 0) err = codeOf(meta[o + 8])
          else if (meta[o + 7] >= 0) {
            bytes = meta[o + 7]
            extra = oneShot('sha256', data.subarray(meta[o + 6], meta[o + 6] + bytes), 'hex')
          } else {
            const h = hashFile(p, size) // large, or grew since lstat: streamed
            extra = h.digest
            bytes = h.size
          }
        }
      } catch (error) {
        err = (error as NodeJS.ErrnoException).code ?? String(error)
      }

      emit(j, [type, mode, meta[o + 2], meta[o + 3], size, extra, xattrs, err], bytes)
    }

    k = reached
  }
}

/** The store's own verdict on a version (what a reader would meet), for anything the quick reads did not find intact. */
const verdict = (digest: string): HistoryResult => store.check(digest, checkedChunks) ?? 0

/**
 * Versions of one chunk (their record's size at most CHUNK_SIZE): one read of
 * the chunk named by the digest, as many as fit per readFiles call. Intact:
 * the recorded size and hashing to the digest; anything else takes the
 * store's verdict.
 */
function singleChunks(items: string[], todo: number[], sizes: number[], emit: Emit): void {
  const paths = todo.map(i => chunkPath(items[i])) // 64 hex digits (checked by the caller)
  const expect = Float64Array.from(todo, i => sizes[i])
  for (let k = 0; k < paths.length;) {
    const reached = sys.readFiles(paths, k, paths.length, 0, expect, data, meta)
    for (let j = k; j < reached; j++) {
      const o = (j - k) * READ_META
      const i = todo[j]
      const ok = meta[o] === 0 && meta[o + 7] === expect[j] && oneShot('sha256', data.subarray(meta[o + 6], meta[o + 6] + meta[o + 7]), 'hex') === items[i]
      emit(i, ok ? 0 : verdict(items[i]), 0)
    }

    k = reached
  }
}

/**
 * store.check for items[start..end) (content digests): versions of one chunk
 * by singleChunks; the others with their manifests read in one readFiles
 * call, then every chunk not checked yet in as few as fit: the same findings,
 * in the same order per version, as store.check.
 */
function historyGroup(items: string[], start: number, end: number, emit: Emit, sizes?: number[]): void {
  if (checkedChunks.size > 8192) checkedChunks.clear() // versions come deduplicated: this only saves re-reading chunks shared by large versions
  const todo: number[] = []
  const paths: string[] = []
  const single: number[] = []
  for (let i = start; i < end; i++) {
    const d = items[i]
    const size = sizes?.[i] ?? 0
    if (d === EMPTY_DIGEST || !HEX64.test(d)) emit(i, store.check(d, checkedChunks) ?? 0, 0)
    else if (size > 0 && size <= CHUNK_SIZE) single.push(i)
    else {
      todo.push(i)
      paths.push(manifestPath(d)) // d is 64 hex digits
    }
  }

  if (single.length > 0) singleChunks(items, single, sizes!, emit)

  const manifests = new Map<number, Manifest>()
  for (let k = 0; k < paths.length;) {
    const reached = sys.readFiles(paths, k, paths.length, 0, null, data, meta)
    for (let j = k; j < reached; j++) {
      const o = (j - k) * READ_META
      const i = todo[j]
      if (meta[o] !== 0 || meta[o + 7] < 0) {
        // no manifest (a version of one chunk recorded without its size, or none: the store looks for its chunk) or one too large to read here
        emit(i, verdict(items[i]), 0)
        continue
      }

      // a chunk named by the digest: a version of one chunk (an older store kept a manifest for it too), or a file put where a version
      // of several chunks is; the store reads that chunk, not the manifest: its verdict
      if (fs.existsSync(chunkPath(items[i]))) {
        emit(i, verdict(items[i]), 0)
        continue
      }

      try {
        manifests.set(i, HistoryStore.parseManifest(items[i], data.toString('utf8', meta[o + 6], meta[o + 6] + meta[o + 7])))
      } catch (error) {
        if (!(error instanceof HistoryError)) throw error
        emit(i, {kind: error.kind, detail: error.message}, 0)
      }
    }

    k = reached
  }

  // each chunk not judged yet, once
  const chunkPaths: string[] = []
  const lengths: number[] = []
  const at: Array<[Manifest, number, string]> = []
  const wanted = new Set<string>()
  for (const m of manifests.values()) {
    for (let c = 0; c < m.chunks.length; c++) {
      const len = HistoryStore.chunkLength(m, c)
      const key = `${m.chunks[c]}:${len}`
      if (checkedChunks.has(key) || wanted.has(key)) continue
      wanted.add(key)
      chunkPaths.push(chunkPath(m.chunks[c])) // parseManifest checked: 64 hex digits
      lengths.push(len)
      at.push([m, c, key])
    }
  }

  const expect = Float64Array.from(lengths)
  for (let k = 0; k < chunkPaths.length;) {
    const reached = sys.readFiles(chunkPaths, k, chunkPaths.length, 0, expect, data, meta)
    for (let j = k; j < reached; j++) {
      const o = (j - k) * READ_META
      const [m, c, key] = at[j]
      // longer than its length: one byte more was read, which chunkProblem reports as altered
      const bytes = meta[o] !== 0 ? undefined : meta[o + 7] >= 0 ? data.subarray(meta[o + 6], meta[o + 6] + meta[o + 7]) : data.subarray(0, 0)
      checkedChunks.set(key, HistoryStore.chunkProblem(m, c, bytes) ?? null)
    }

    k = reached
  }

  for (const [i, m] of manifests) {
    let problem: HistoryProblem | undefined
    for (let c = 0; c < m.chunks.length && !problem; c++) problem = checkedChunks.get(`${m.chunks[c]}:${HistoryStore.chunkLength(m, c)}`) ?? undefined
    problem ??= store.wholeProblem(m)
    emit(i, problem ?? 0, 0)
  }
}

parentPort!.on('message', (set: JobSet) => {
  const claim = new Int32Array(set.claim)
  const group: Group = set.kind === 'scan' ? scanGroup : historyGroup
  let idx: number[] = []
  let out: Answer['out'] = []
  let bytes = 0
  const send = () => {
    parentPort!.postMessage({id: set.id, idx, out, bytes} satisfies Answer)
    idx = []
    out = []
    bytes = 0
  }

  const emit: Emit = (i, r, b) => {
    idx.push(i)
    out.push(r)
    bytes += b
  }

  const n = set.items.length
  for (let i = Atomics.add(claim, 0, GROUP); i < n; i = Atomics.add(claim, 0, GROUP)) {
    group(set.items, i, Math.min(n, i + GROUP), emit, set.sizes)
    if (idx.length >= BATCH || bytes >= BATCH_BYTES) send()
  }

  if (idx.length > 0) send()
})
