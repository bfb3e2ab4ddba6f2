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
 * How far the walk may run ahead of a caller that cannot use the entries yet:
 * after `sets` job sets it waits for `until` (verify holds the entries that
 * come before its expected tree is complete; a bound keeps that small).
 * The caller must settle `until` (resolved or rejected, the walk goes on),
 * also when it fails, or the scan never ends; a failed set also ends the wait.
 */
export interface ScanAhead {
  sets: number
  until: Promise<void>
}

/**
 * Scans root (or only `subtree` below it) on the pool, handing each entry to
 * onEntry (by volume path, '/a/b') as it comes. Resolves when all are done.
 */
export async function scanTree(pool: WorkerPool, root: string, onEntry: (path: string, e: ActualEntry) => void,
  opts: {subtree?: string; onProgress?: (p: ScanProgress) => void; ahead?: ScanAhead; setSize?: number} = {}): Promise<void> {
  const setSize = opts.setSize ?? SET_SIZE
  const dirErrors = new Map<string, string>() // a directory that could not be listed: its entry says so
  const progress: ScanProgress = {files: 0, bytes: 0}
  const runs: Array<Promise<void>> = []
  let vols: string[] = []
  let abss: string[] = []
  // the walk waits for the caller's `until`, or for a set to fail (then the scan fails rather than waits on)
  let released = !opts.ahead
  let failed = false
  let onFail!: () => void
  const failure = new Promise<void>(resolve => {
    onFail = resolve
  })
  const open = Promise.race([opts.ahead?.until.catch(() => {}), failure]).then(() => {
    released = true
  })
  const mustWait = () => !released && runs.length >= opts.ahead!.sets
  // a directory's entry is handed on once the walk has listed it (a directory it cannot list is reported on its entry)
  let walking = true
  const listed = new Set<string>()
  const held = new Map<string, ActualEntry>()
  const deliver = (vol: string, e: ActualEntry) => {
    const err = dirErrors.get(vol)
    if (err !== undefined && !e.error) e.error = err
    onEntry(vol, e)
  }

  const listedNow = (vol: string) => {
    listed.add(vol)
    const e = held.get(vol)
    if (e) {
      held.delete(vol)
      deliver(vol, e)
    }
  }

  const post = () => {
    if (vols.length === 0) return
    const v = vols
    const run = pool.run('scan', abss, (idx, out, bytes) => {
      for (let k = 0; k < idx.length; k++) {
        const vol = v[idx[k]]
        const e = entryOf(out[k] as ScanResult)
        if (e.type === 'file') progress.files++
        if (e.type === 'dir' && walking && !listed.has(vol)) held.set(vol, e) // its listing may still fail: wait for it
        else deliver(vol, e)
      }

      progress.bytes += bytes
      opts.onProgress?.(progress)
    })
    run.catch(() => {
      failed = true
      onFail()
    })
    runs.push(run)
    vols = []
    abss = []
  }

  const add = (vol: string, abs: string) => {
    vols.push(vol)
    abss.push(abs)
    if (vols.length >= setSize) post()
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
      listedNow(vol)
      continue
    }

    listedNow(vol)

    dirents.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    const subdirs: Array<[string, string]> = []
    for (const d of dirents) {
      if (vol === '/' && d.name === STATE_DIR) continue
      const childVol = vol === '/' ? `/${d.name}` : `${vol}/${d.name}`
      const childAbs = abs.endsWith('/') ? abs + d.name : `${abs}/${d.name}` // path.join, without its normalising: a name holds no '/'
      add(childVol, childAbs)
      if (d.isDirectory()) subdirs.push([childVol, childAbs])
      if (mustWait()) await open
      if (failed) break
    }

    if (failed) break

    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i])
  }

  post()
  walking = false
  for (const [vol, e] of held) deliver(vol, e)
  held.clear()
  await Promise.all(runs)
}
