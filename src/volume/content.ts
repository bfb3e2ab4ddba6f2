/**
 * Content digests without re-reading files: while a file is written
 * sequentially from its start by a single writer (cp, tar, editors saving a
 * new file), the digest is kept up to date as the bytes pass through. Any
 * other pattern (random writes, appends to existing data, truncation, several
 * writers) falls back to re-reading the file when the digest is needed.
 */
import {createHash} from 'node:crypto'
import fs from 'node:fs'
import {promisify} from 'node:util'
import type {CaptureResume} from '../history/store.js'
import {openQuiet} from '../quiet-open.js'
import type {Passthrough} from './passthrough.js'
import {RunningDigest} from './running-digest.js'

const read = promisify(fs.read)
const CHUNK = 1 << 20
/** Writes smaller than this are hashed at once: a trip through the thread pool would cost more. */
const POOL_HASH_MIN = 64 * 1024

export class InodeContent {
  writers = 0
  dirty = false
  /** the running digest, for a file written sequentially from empty through the volume (not a passthrough handle) */
  private running: RunningDigest | undefined
  /** Changes made here (writes through the volume, invalidations, detached passthrough handles). */
  private ownGen = 0
  /** Open passthrough handles writing this inode: the binding counts and hashes their writes. */
  private readonly natives = new Set<number>()
  private pt: Passthrough | undefined
  /**
   * Bumped whenever the bytes may change other than by the sequential writer
   * going on (a writer opens, a write elsewhere, a truncate): a history
   * capture's resume point is kept with the epoch it was taken in and is
   * void in any other.
   */
  private epochNo = 0
  private resumeAt: {epoch: number; point: CaptureResume} | undefined

  constructor(readonly key: string) {}

  get epoch(): number {
    return this.epochNo
  }

  /** Keeps a capture's resume point, taken while the epoch was `epoch` (unless it has changed since). */
  keepResume(epoch: number, point: CaptureResume | undefined): void {
    if (point && epoch === this.epochNo) this.resumeAt = {epoch, point}
  }

  /**
   * Where the next capture may go on from: the file has been written only
   * sequentially beyond it since it was taken. With a running digest only
   * (a passthrough handle's stops for good at any other write).
   */
  resumePoint(): CaptureResume | undefined {
    return this.resumeAt?.epoch === this.epochNo ? this.resumeAt.point : undefined
  }

  private newEpoch(): void {
    this.epochNo++
    this.resumeAt = undefined
  }

  /** Bumped by every change to the bytes; a digest computed under an older generation is stale. */
  get gen(): number {
    let g = this.ownGen
    for (const fh of this.natives) g += this.pt!.gen(fh)
    return g
  }

  /**
   * A writer opens the file; `empty` when it starts with no bytes (new, O_TRUNC
   * or size 0). With `native`, the handle is attached to the binding, which then
   * keeps the running digest (if one starts here) instead of this object;
   * `attached`: the binding attached it itself (a create it made, see oplog.ts).
   */
  openWriter(empty: boolean, native?: {pt: Passthrough; fh: number; fd: number; append: boolean}, attached = false): void {
    this.writers++
    this.newEpoch()
    const fresh = this.writers === 1 && !this.dirty && empty
    this.running = fresh && !native ? new RunningDigest() : undefined
    for (const fh of this.natives) {
      // a second writer: no running digest, and its writes come through the volume
      this.pt!.gate(fh, false)
      this.pt!.invalidate(fh)
    }

    if (native) {
      const {pt, fh, fd, append} = native
      // (a create the binding made is attached already, hashing from its first write)
      if (!attached) pt.attach(fh, fd, (fresh ? pt.PT_HASH : 0) | (append ? pt.PT_APPEND : 0))
      this.pt = pt
      this.natives.add(fh)
    }
  }

  closeWriter(): void {
    this.writers = Math.max(0, this.writers - 1)
  }

  /** Detaches a passthrough handle of this inode (before its fd is closed), keeping its writes counted. */
  dropNative(fh: number): void {
    if (!this.natives.delete(fh)) return
    this.ownGen += this.pt!.detach(fh) ?? 0
  }

  /**
   * Bytes [pos, pos+data.length) were written (not through a passthrough
   * handle). With `fd`, the descriptor they were written through: a large
   * sequential write is then hashed on the thread pool, read back through it
   * (running-digest.ts); the caller keeps it open until idle().
   */
  wrote(pos: number, data: Buffer, appendMode: boolean, fd?: number): void {
    this.ownGen++
    const r = this.running
    if (r && !appendMode && fd !== undefined && data.length >= POOL_HASH_MIN && r.fitsPool(pos, data.length)) {
      const job = r.hashLater(`/proc/self/fd/${fd}`, pos, data.length).then(() => {
        if (r.broken && this.running === r) this.lostRunning()
      })
      this.jobs.add(job)
      void job.finally(() => this.jobs.delete(job))
      return
    }

    if (!r || appendMode || !r.add(pos, data)) this.lostRunning()
  }

  /** Running-digest jobs on the pool (of this and any earlier running digest: each reads a descriptor back). */
  private readonly jobs = new Set<Promise<void>>()

  /** Until the running digest's pool jobs have finished (before a digest, and before a writer's descriptor is closed). */
  async idle(): Promise<void> {
    while (this.jobs.size > 0) await Promise.allSettled([...this.jobs])
    await this.running?.settled() // a small write hashed after them
  }

  private lostRunning(): void {
    this.running = undefined
    this.newEpoch()
  }

  /** The bytes changed in a way the running digest cannot follow (truncate, mmap, ...). */
  invalidate(): void {
    this.ownGen++
    this.running = undefined
    this.newEpoch()
    for (const fh of this.natives) this.pt!.invalidate(fh)
  }

  /**
   * Until the binding has hashed what its passthrough handle wrote so far
   * (its hasher may lag far behind on a busy machine): that hashing runs on
   * the thread pool, beside whatever the caller awaits with it (the fsync of
   * the data), and `incremental` then has nothing left to hash on the event loop.
   */
  async caughtUp(): Promise<void> {
    if (this.natives.size !== 1) return
    const work = this.pt!.catchUp([...this.natives][0])
    if (work) await work
  }

  /**
   * The running digest and the size it covers, if that is the file's size:
   * `size` is the file's size now (fstat) for a digest kept here; a passthrough
   * handle's digest comes with its own fstat, taken under the binding's lock.
   */
  incremental(size: number): {size: number; digest: string} | undefined {
    if (this.running) {
      const digest = this.running.size === size ? this.running.digest() : undefined
      return digest === undefined ? undefined : {size, digest}
    }

    if (this.natives.size !== 1) return undefined
    const [fh] = this.natives
    const s = this.pt!.state(fh)
    return s.digest === null ? undefined : {size: s.size, digest: s.digest}
  }

  /**
   * True if nothing was written since generation `gen`. Passthrough writes stop
   * (their gates close) in the same step, so that the file cannot change
   * between this check and the caller marking it clean; the volume reopens the
   * gates on the next write it sees.
   */
  settle(gen: number): boolean {
    let g = this.ownGen
    for (const fh of this.natives) g += this.pt!.gate(fh, false)
    return g === gen
  }
}

/**
 * sha256 of a whole file, given any open descriptor of it (even write-only):
 * the inode is re-opened read-only through /proc/self/fd, and read in 1 MiB
 * chunks (reads run off the event loop).
 */
export async function digestFd(fd: number): Promise<{digest: string; size: number}> {
  const rfd = await openQuiet(`/proc/self/fd/${fd}`, fs.constants.O_RDONLY)
  try {
    return await digestReadable(rfd.fd)
  } finally {
    await rfd.close()
  }
}

async function digestReadable(fd: number): Promise<{digest: string; size: number}> {
  const h = createHash('sha256')
  const buf = Buffer.allocUnsafe(CHUNK)
  let pos = 0
  for (;;) {
    const {bytesRead} = await read(fd, buf, 0, CHUNK, pos)
    if (bytesRead === 0) break
    h.update(buf.subarray(0, bytesRead))
    pos += bytesRead
  }

  return {digest: h.digest('hex'), size: pos}
}

export const EMPTY_DIGEST = createHash('sha256').digest('hex')
