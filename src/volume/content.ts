/**
 * Content digests without re-reading files: while a file is written
 * sequentially from its start by a single writer (cp, tar, editors saving a
 * new file), the digest is kept up to date as the bytes pass through. Any
 * other pattern (random writes, appends to existing data, truncation, several
 * writers) falls back to re-reading the file when the digest is needed.
 */
import {createHash, type Hash} from 'node:crypto'
import fs from 'node:fs'
import {promisify} from 'node:util'

const read = promisify(fs.read)
const open = promisify(fs.open)
const close = promisify(fs.close)
const CHUNK = 1 << 20

export class InodeContent {
  writers = 0
  /** Bumped by every change to the bytes; a digest computed under an older generation is stale. */
  gen = 0
  dirty = false
  private hash: Hash | undefined
  private hashedUpTo = 0

  constructor(readonly key: string) {}

  /** A writer opens the file; `empty` when it starts with no bytes (new, O_TRUNC or size 0). */
  openWriter(empty: boolean): void {
    this.writers++
    if (this.writers === 1 && !this.dirty && empty) {
      this.hash = createHash('sha256')
      this.hashedUpTo = 0
    } else {
      this.hash = undefined
    }
  }

  closeWriter(): void {
    this.writers = Math.max(0, this.writers - 1)
  }

  /** Bytes [pos, pos+data.length) were written. */
  wrote(pos: number, data: Buffer, appendMode: boolean): void {
    this.gen++
    if (this.hash && !appendMode && pos === this.hashedUpTo) {
      this.hash.update(data)
      this.hashedUpTo += data.length
    } else {
      this.hash = undefined
    }
  }

  /** The bytes changed in a way the running digest cannot follow (truncate, mmap, ...). */
  invalidate(): void {
    this.gen++
    this.hash = undefined
  }

  /** The running digest if it covers exactly `size` bytes. */
  incremental(size: number): string | undefined {
    if (!this.hash || this.hashedUpTo !== size) return undefined
    return this.hash.copy().digest('hex')
  }
}

/**
 * sha256 of a whole file, given any open descriptor of it (even write-only):
 * the inode is re-opened read-only through /proc/self/fd, and read in 1 MiB
 * chunks (reads run off the event loop).
 */
export async function digestFd(fd: number): Promise<{digest: string; size: number}> {
  const rfd = await open(`/proc/self/fd/${fd}`, fs.constants.O_RDONLY)
  try {
    return await digestReadable(rfd)
  } finally {
    await close(rfd)
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
