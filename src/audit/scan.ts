/**
 * The actual tree: walk the backing directory (never the state directory)
 * and hand every entry to the worker pool, which lstats it, reads its xattrs
 * and hashes a regular file (worker.ts). The walk itself is readdir with file
 * types on the main thread, posted to the workers in sets as it goes; the
 * results stream back in batches and are folded into one map.
 */
import fs from 'node:fs'
import path from 'node:path'
import {STATE_DIR} from '../volume/layout.js'
import type {WorkerPool} from './pool.js'
import type {ScanResult} from './worker.js'

export interface ActualEntry {
  type: string
  mode: number
  uid: number
  gid: number
  size: number
  digest?: string
  target?: string
  xattrs?: Map<string, string> // absent: none
  error?: string // unreadable: the reason
}

export interface ScanProgress {
  files: number
  bytes: number
}

/** Entries per job set posted while the walk goes on. */
const SET_SIZE = 4096

function entryOf(r: ScanResult): ActualEntry {
  const [type, mode, uid, gid, size, extra, xattrs, error] = r
  const e: ActualEntry = {type, mode, uid, gid, size}
  if (type === 'file' && extra !== undefined) e.digest = extra
  else if (type === 'symlink' && extra !== undefined) e.target = extra
  if (xattrs) e.xattrs = new Map(xattrs)
  if (error !== undefined) e.error = error
  return e
}

/**
 * Scans root (or only `subtree` below it) on the pool, handing each entry to
 * onEntry (by volume path, '/a/b') as it comes. Resolves when all are done.
 */
export async function scanTree(pool: WorkerPool, root: string, onEntry: (path: string, e: ActualEntry) => void,
  opts: {subtree?: string; onProgress?: (p: ScanProgress) => void} = {}): Promise<void> {
  const dirErrors = new Map<string, string>() // a directory that could not be listed: its entry says so
  const progress: ScanProgress = {files: 0, bytes: 0}
  const runs: Array<Promise<void>> = []
  let vols: string[] = []
  let abss: string[] = []

  const post = () => {
    if (vols.length === 0) return
    const v = vols
    runs.push(pool.run('scan', abss, (idx, out, bytes) => {
      for (let k = 0; k < idx.length; k++) {
        const vol = v[idx[k]]
        const e = entryOf(out[k] as ScanResult)
        if (e.type === 'file') progress.files++
        const err = dirErrors.get(vol)
        if (err !== undefined && !e.error) e.error = err
        onEntry(vol, e)
      }

      progress.bytes += bytes
      opts.onProgress?.(progress)
    }))
    vols = []
    abss = []
  }

  const add = (vol: string, abs: string) => {
    vols.push(vol)
    abss.push(abs)
    if (vols.length >= SET_SIZE) post()
  }

  const start = opts.subtree && opts.subtree !== '/' ? opts.subtree : '/'
  const startAbs = start === '/' ? root : path.join(root, start)
  add(start, startAbs)
  let startIsDir = false
  try {
    startIsDir = fs.lstatSync(startAbs).isDirectory()
  } catch { /* the worker reports it */ }

  // depth first, names sorted, directories listed before their contents are posted
  const stack: Array<[string, string]> = startIsDir ? [[start, startAbs]] : []
  while (stack.length > 0) {
    const [vol, abs] = stack.pop()!
    let dirents: fs.Dirent[]
    try {
      dirents = fs.readdirSync(abs, {withFileTypes: true})
    } catch (error) {
      dirErrors.set(vol, (error as NodeJS.ErrnoException).code ?? String(error))
      continue
    }

    dirents.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    const subdirs: Array<[string, string]> = []
    for (const d of dirents) {
      if (vol === '/' && d.name === STATE_DIR) continue
      const childVol = vol === '/' ? `/${d.name}` : `${vol}/${d.name}`
      const childAbs = path.join(abs, d.name)
      add(childVol, childAbs)
      if (d.isDirectory()) subdirs.push([childVol, childAbs])
    }

    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i])
  }

  post()
  await Promise.all(runs)
}
