/**
 * Mounting a Volume with (patched) fuse-native, and unmounting it again.
 * Checks the mountpoint first so the user gets one clear line instead of a
 * libfuse message.
 */
import {execFileSync} from 'node:child_process'
import fs from 'node:fs'
import {createRequire} from 'node:module'
import path from 'node:path'
import v8 from 'node:v8'
import {PacioError} from '../errors.js'
import type {Passthrough} from '../volume/passthrough.js'
import {sys} from '../volume/sys.js'
import type {Volume} from '../volume/types.js'
import {makeOps, type AdapterEvents} from './adapter.js'

const require = createRequire(import.meta.url)

interface FuseInstance {
  mount(cb: (err?: Error | null) => void): void
  unmount(cb: (err?: Error | null) => void): void
  context(): {uid: number; gid: number; pid: number}
}

interface FuseClass {
  new (mnt: string, ops: Record<string, unknown>, opts: Record<string, unknown>): FuseInstance
  UTIME_NOW: bigint
  UTIME_OMIT: bigint
  passthrough?: Passthrough & {totals(): {fastReads: number; fastWrites: number; slowWrites: number; fastMeta: number; writerHashed: number; caughtUp: number; hasherRaised: number}}
  /** thread locals of FUSE threads the binding made, and how often an ended thread's were taken over */
  threadLocals?(): {made: number; reused: number}
  /** pages per request the binding offered the kernel at INIT (0: libfuse's own 128 KiB) */
  maxPages?(): number
}

function loadFuse(): FuseClass {
  if (!fs.existsSync('/dev/fuse')) {
    throw new PacioError('ENOFUSE', '/dev/fuse does not exist: the kernel has no FUSE support here',
      {suggestion: 'load it with `modprobe fuse` (in a container, pass --device /dev/fuse)'})
  }

  try {
    return require('fuse-native') as FuseClass
  } catch (error) {
    throw new PacioError('ENOFUSE', `cannot load FUSE bindings: ${(error as Error).message.split('\n')[0]}`,
      {suggestion: 'install libfuse: `apt-get install -y libfuse2 fuse3`, then `npm ci`', cause: error})
  }
}

/** Malloc arenas a mount's process keeps at most (see limitMallocArenas). */
export const MOUNT_MALLOC_ARENAS = 2

/**
 * Call first thing in a process that will serve a mount. glibc gives each
 * thread that finds the arenas busy one of its own (up to 8 per core), and a
 * block freed there stays there: libfuse's threads each held several MB of
 * the mount's RSS that way while 100,000 files were created (38 MB in all).
 * Two arenas are enough for a server whose threads mostly wait on the kernel.
 * A MALLOC_ARENA_MAX in the environment (glibc applied it at start) wins.
 */
export function limitMallocArenas(): void {
  if (process.env.MALLOC_ARENA_MAX !== undefined) return
  sys.limitMallocArenas(MOUNT_MALLOC_ARENAS)
}

/** How far (per cent) V8 lets a mount's old generation grow past what its last full collection kept. */
export const MOUNT_HEAP_GROWING_PERCENT = 20
const HEAP_GROWING_OPTION = '--heap-growing-percent'
const HEAP_GROWING_GIVEN = /--heap[-_]growing[-_]percent\b/

/**
 * Call first thing in a process that will serve a mount. With the young
 * generation capped (bin/run.js), the objects of every operation that outlive
 * two scavenges (records waiting for their journal transaction, placements)
 * are promoted and die in the old generation, which V8 let grow to about 4x
 * what its last full collection kept: a mount creating 100,000 files kept
 * 16-20 MB of live heap and went up to 61-71 MB before each full collection.
 * At 20 % the limit is the live heap plus V8's minimum step (8 MB): it peaked
 * at 28-38 MB, for as much main-thread CPU as before (12.4-14.1 s against
 * 12.3-14.7 s for the whole memory bench). The flag is process-wide (the
 * ledger writer's isolate too) and read at every full collection. A
 * --heap-growing-percent of node's own options (or NODE_OPTIONS) wins.
 */
export function limitHeapGrowth(execArgv: readonly string[] = process.execArgv, env: NodeJS.ProcessEnv = process.env): boolean {
  if (HEAP_GROWING_GIVEN.test(execArgv.join(' ')) || HEAP_GROWING_GIVEN.test(env.NODE_OPTIONS ?? '')) return false
  v8.setFlagsFromString(`${HEAP_GROWING_OPTION}=${MOUNT_HEAP_GROWING_PERCENT}`)
  return true
}

/** How often a mount's process gives its free malloc pages back (see trimMalloc). */
export const MALLOC_TRIM_EVERY_MS = 5000

/**
 * Every `everyMs`, glibc's malloc_trim on the thread pool: the pages of blocks
 * that libfuse's threads and SQLite freed stay in their arenas otherwise, and
 * a mount's RSS only grew (about 12 MB given back after 100,000 files were
 * created). Returns the function that stops it.
 */
export function trimMalloc(everyMs = MALLOC_TRIM_EVERY_MS): () => void {
  let running = false
  const timer = setInterval(() => {
    if (running) return
    running = true
    sys.trimMallocJob().catch(() => false).finally(() => {
      running = false
    })
  }, everyMs)
  timer.unref()
  return () => clearInterval(timer)
}

/** Mount entries (decoded) from /proc/mounts. */
export function mountedAt(mountpoint: string): boolean {
  const target = path.resolve(mountpoint)
  try {
    return fs.readFileSync('/proc/mounts', 'utf8').split('\n')
      .some(line => line.split(' ')[1]?.replace(/\\040/g, ' ').replace(/\\011/g, '\t').replace(/\\134/g, '\\') === target)
  } catch {
    return false
  }
}

export function checkMountpoint(mountpoint: string): string {
  const abs = path.resolve(mountpoint)
  if (mountedAt(abs)) {
    throw new PacioError('EBUSY', `${abs} is already a mount point`, {suggestion: `unmount it first: fusermount -u ${abs}`})
  }

  let st: fs.Stats
  try {
    st = fs.statSync(abs)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw new PacioError('EINPUT', `mountpoint ${abs} does not exist`, {suggestion: `create it: mkdir -p ${abs}`})
    if (code === 'ENOTCONN') throw new PacioError('EBUSY', `${abs} is a stale mount`, {suggestion: `clean it up: fusermount -u ${abs}`})
    throw error
  }

  if (!st.isDirectory()) throw new PacioError('EINPUT', `mountpoint ${abs} is not a directory`)
  if (fs.readdirSync(abs).length > 0) throw new PacioError('EINPUT', `mountpoint ${abs} is not empty`)
  return abs
}

export interface Mounted {
  mountpoint: string
  unmount(): Promise<void>
}

export interface MountOptions extends AdapterEvents {
  fsname?: string
  debug?: boolean
  /**
   * The largest request the kernel may send (128 KiB to 1 MiB; default 128 KiB,
   * libfuse 2's own): a write(2) of up to this many bytes is one request
   * instead of one per 128 KiB, each a round trip through a FUSE thread.
   * PACIOFS_MAX_WRITE=N overrides it (for comparisons in one build).
   */
  maxWrite?: number
}

/** The request size a mount asks the kernel for: opts.maxWrite, or PACIOFS_MAX_WRITE's. */
export function requestSize(maxWrite: number | undefined, env = process.env.PACIOFS_MAX_WRITE): number | undefined {
  return env !== undefined && env !== '' ? Number(env) : maxWrite
}

export async function mountVolume(volume: Volume, mountpoint: string, opts: MountOptions = {}): Promise<Mounted> {
  const abs = checkMountpoint(mountpoint)
  const Fuse = loadFuse()
  if (process.getuid?.() !== 0) {
    throw new PacioError('EPERM', 'mounting with allow_other and per-user ownership needs root',
      {suggestion: 'run paciofs mount as root (e.g. with sudo)'})
  }

  // read/write and read-only metadata on the binding's FUSE threads; for comparisons,
  // PACIOFS_PASSTHROUGH=0 keeps every request in JS, =reads lets the binding serve reads only,
  // =io reads and writes but no metadata
  const mode = process.env.PACIOFS_PASSTHROUGH
  if (Fuse.passthrough && volume.usePassthrough && mode !== '0') {
    volume.usePassthrough(Fuse.passthrough, {writes: mode !== 'reads', meta: mode !== 'reads' && mode !== 'io'})
  }

  let fuse: FuseInstance
  const context = {context: () => fuse.context()}
  const ops = makeOps(volume, context, Fuse, opts)
  const fsname = (opts.fsname ?? 'paciofs').replace(/[,\\]/g, '_')
  fuse = new Fuse(abs, ops, {
    force: false,
    mkdir: false,
    debug: opts.debug ?? false,
    options: ['allow_other', 'default_permissions', 'use_ino', `fsname=${fsname}`, 'subtype=paciofs'],
    maxWrite: requestSize(opts.maxWrite),
  })
  await new Promise<void>((resolve, reject) => fuse.mount(err => err ? reject(new PacioError('ENOFUSE', `mount failed at ${abs}: ${err.message}`, {cause: err})) : resolve()))
  // creates of new files and unlinks on the binding's threads, each in the op log before it is
  // answered (the volume journals its record afterwards); PACIOFS_FAST_CREATE=0 leaves them to the volume.
  // Releases are answered there too and run by the volume afterwards (PACIOFS_FAST_RELEASE=0: not)
  if (mode !== '0' && mode !== 'reads' && mode !== 'io' && process.env.PACIOFS_FAST_CREATE !== '0') {
    volume.startFastCreate?.(error => opts.onInternalError?.('create', error), {releases: process.env.PACIOFS_FAST_RELEASE !== '0'})
  }

  let unmounting: Promise<void> | undefined
  return {
    mountpoint: abs,
    unmount() {
      unmounting ??= new Promise<void>(resolve => {
        fuse.unmount(err => {
          if (err && mountedAt(abs)) {
            try {
              execFileSync('fusermount', ['-uz', abs], {stdio: 'ignore'})
            } catch { /* reported by the caller's check */ }
          }

          // no create on the binding's threads from now on, and those it made reach the volume
          // (and its journal) before the volume closes
          volume.stopFastCreate?.()
          writePassthroughStats(Fuse)
          resolve()
        })
      })
      return unmounting
    },
  }
}

/**
 * PACIOFS_PASSTHROUGH_STATS=FILE: at unmount, write how many reads and writes
 * of released handles the binding served itself, how many writes it handed to
 * JS, and how many FUSE thread locals it made and reused (for tests and
 * benchmarks; no effect otherwise).
 */
function writePassthroughStats(Fuse: FuseClass): void {
  const file = process.env.PACIOFS_PASSTHROUGH_STATS
  if (!file || !Fuse.passthrough) return
  try {
    fs.writeFileSync(file, JSON.stringify({...Fuse.passthrough.totals(), fast: Fuse.passthrough.createTotal(), threads: Fuse.threadLocals?.(), maxPages: Fuse.maxPages?.()}) + '\n')
  } catch { /* a diagnostic only */ }
}
