/**
 * The actual tree: walk the backing directory (never the state directory),
 * lstat everything, read xattrs, and hash regular files on a pool of worker
 * threads (one per core), in batches so that small files cost little.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {Worker} from 'node:worker_threads'
import {sha256Hex} from '../crypto/hash.js'
import {STATE_DIR} from '../volume/layout.js'
import {sys} from '../volume/sys.js'

export interface ActualEntry {
  type: string
  mode: number
  uid: number
  gid: number
  size: number
  digest?: string
  target?: string
  xattrs: Map<string, string>
  error?: string // unreadable: the reason
}

export interface ScanProgress {
  files: number
  bytes: number
}

// Runs inside each worker: hash the files named in a batch, reply with digests.
const WORKER = `
const {parentPort} = require('node:worker_threads')
const fs = require('node:fs'), crypto = require('node:crypto')
const buf = Buffer.allocUnsafe(1 << 20)
parentPort.on('message', ({id, paths}) => {
  const out = []
  for (const p of paths) {
    let fd
    try {
      fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW)
      const h = crypto.createHash('sha256')
      let size = 0, n
      while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) { h.update(buf.subarray(0, n)); size += n }
      out.push({digest: h.digest('hex'), size})
    } catch (e) {
      out.push({error: e.code || String(e)})
    } finally {
      if (fd !== undefined) fs.closeSync(fd)
    }
  }
  parentPort.postMessage({id, out})
})`

type HashResult = {digest?: string; size?: number; error?: string}

class HashPool {
  private readonly workers: Worker[]
  private readonly waiting = new Map<number, (r: HashResult[]) => void>()
  private next = 0
  private id = 0

  constructor(n: number) {
    this.workers = Array.from({length: n}, () => {
      const w = new Worker(WORKER, {eval: true})
      w.on('message', ({id, out}: {id: number; out: HashResult[]}) => {
        const done = this.waiting.get(id)
        this.waiting.delete(id)
        done?.(out)
      })
      return w
    })
  }

  hash(paths: string[]): Promise<HashResult[]> {
    const id = this.id++
    const w = this.workers[this.next++ % this.workers.length]
    return new Promise(resolve => {
      this.waiting.set(id, resolve)
      w.postMessage({id, paths})
    })
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map(w => w.terminate()))
  }
}

function typeOf(st: fs.Stats): string {
  if (st.isFile()) return 'file'
  if (st.isDirectory()) return 'dir'
  if (st.isSymbolicLink()) return 'symlink'
  if (st.isFIFO()) return 'fifo'
  if (st.isCharacterDevice()) return 'chr'
  if (st.isBlockDevice()) return 'blk'
  return 'sock'
}

function xattrsOf(p: string): Map<string, string> {
  const out = new Map<string, string>()
  let names: string[] = []
  try {
    names = sys.llistxattr(p)
  } catch {
    return out
  }

  for (const n of names) {
    try {
      out.set(n, sha256Hex(sys.lgetxattr(p, n)))
    } catch { /* vanished */ }
  }

  return out
}

const BATCH_FILES = 64
const BATCH_BYTES = 8 << 20

/** Scans root (or only `subtree` below it); paths in the result are volume paths ('/a/b'). */
export async function scanTree(root: string, opts: {subtree?: string; threads?: number; onProgress?: (p: ScanProgress) => void} = {}): Promise<Map<string, ActualEntry>> {
  const result = new Map<string, ActualEntry>()
  const pool = new HashPool(opts.threads ?? Math.max(1, Math.min(os.availableParallelism(), 8)))
  const progress: ScanProgress = {files: 0, bytes: 0}
  const inflight = new Set<Promise<void>>()
  let batch: Array<{vol: string; abs: string}> = []
  let batchBytes = 0

  const flushBatch = () => {
    if (batch.length === 0) return
    const items = batch
    batch = []
    batchBytes = 0
    const p = pool.hash(items.map(i => i.abs)).then(results => {
      results.forEach((r, i) => {
        const e = result.get(items[i].vol)!
        if (r.error) e.error = r.error
        else {
          e.digest = r.digest
          progress.bytes += r.size ?? 0
        }
      })
      progress.files += items.length
      opts.onProgress?.(progress)
    })
    inflight.add(p)
    void p.finally(() => inflight.delete(p))
  }

  const visit = async (vol: string, abs: string): Promise<void> => {
    let st: fs.Stats
    try {
      st = await fs.promises.lstat(abs)
    } catch (error) {
      result.set(vol, {type: 'unknown', mode: 0, uid: -1, gid: -1, size: 0, xattrs: new Map(), error: (error as NodeJS.ErrnoException).code})
      return
    }

    const entry: ActualEntry = {type: typeOf(st), mode: st.mode, uid: st.uid, gid: st.gid, size: st.size, xattrs: xattrsOf(abs)}
    result.set(vol, entry)
    if (entry.type === 'symlink') entry.target = await fs.promises.readlink(abs)
    else if (entry.type === 'file') {
      batch.push({vol, abs})
      batchBytes += st.size
      if (batch.length >= BATCH_FILES || batchBytes >= BATCH_BYTES) flushBatch()
      while (inflight.size > poolDepth) await Promise.race(inflight)
    } else if (entry.type === 'dir') {
      let names: string[]
      try {
        names = await fs.promises.readdir(abs)
      } catch (error) {
        entry.error = (error as NodeJS.ErrnoException).code
        return
      }

      for (const name of names.sort()) {
        if (vol === '/' && name === STATE_DIR) continue
        await visit(vol === '/' ? `/${name}` : `${vol}/${name}`, path.join(abs, name))
      }
    }
  }

  const poolDepth = 4 * (opts.threads ?? 2)
  try {
    const start = opts.subtree && opts.subtree !== '/' ? opts.subtree : '/'
    await visit(start, start === '/' ? root : path.join(root, start))
    flushBatch()
    while (inflight.size > 0) await Promise.all([...inflight])
  } finally {
    await pool.close()
  }

  return result
}
