/**
 * The SHA-256 of a file written sequentially from its start, kept up to date
 * as the bytes pass (content.ts's InodeContent holds one per written inode).
 * It is kept as a chain state between 64-byte blocks (src/history/sha256.ts),
 * not as a Node Hash, so that a large write of whole blocks can be hashed
 * after it returned, on the thread pool (sys.hashFileJob reads the bytes
 * back from the page cache, as the FUSE binding's hasher thread does for a
 * local mount): a server's event loop, which also decrypts every byte the
 * clients send, then does not hash them, and its writes do not wait for the
 * pool either. Those jobs run one after the other (each starts from the
 * state the one before left), and a small write that comes meanwhile is
 * hashed after them (a copy waits); the digest is there once they are done.
 * Bytes short of a whole block wait in `tail` for the next write.
 */
import {stepNow} from '../history/sha256.js'
import {sys} from './sys.js'

const EMPTY = Buffer.alloc(0)
/** the read-back buffer's size: a server's writes are at most 1 MiB */
const SCRATCH = 1 << 20

export class RunningDigest {
  private state: Buffer | null = null
  /** bytes the state covers (a multiple of 64) */
  private blocks = 0
  private tail: Buffer = EMPTY
  /** bytes written but still to be hashed on the pool */
  private pending = 0
  /** the last pool job: the next one hashes from the state after it */
  private chain: Promise<void> = Promise.resolve()
  /** where the pool jobs read the bytes back (one job at a time) */
  private scratch: Buffer | undefined
  /** a pool job failed (the file could not be read back): it no longer follows the bytes */
  broken = false

  /** Bytes it covers, counting those still to be hashed. */
  get size(): number {
    return this.blocks + this.tail.length + this.pending
  }

  /** True if `len` bytes written at `pos` may be hashed on the pool: whole blocks, right after whole blocks. */
  fitsPool(pos: number, len: number): boolean {
    // all bytes so far are contiguous and the state covers whole blocks: the tail they leave is size % 64
    return !this.broken && len > 0 && len % 64 === 0 && this.size % 64 === 0 && pos === this.size
  }

  /**
   * Bytes [pos, pos+len) were written (the caller checked fitsPool): they are
   * read back from `path` (which must stay the file until settled()) and
   * hashed on the pool, after those before them. Returns that job's promise.
   */
  hashLater(path: string, pos: number, len: number): Promise<void> {
    this.pending += len
    const run = this.chain.then(async () => {
      try {
        if (this.broken || this.tail.length > 0) return void (this.broken = true)
        const out = Buffer.allocUnsafe(32)
        if (!this.scratch || this.scratch.length < len) this.scratch = Buffer.allocUnsafeSlow(Math.max(len, SCRATCH))
        const got = await sys.hashFileJob(path, pos, len, this.state, this.blocks, out, this.scratch).catch(() => -1)
        if (got === len) {
          this.state = out
          this.blocks += len
        } else {
          this.broken = true
        }
      } finally {
        this.pending -= len
      }
    })
    this.chain = run
    return run
  }

  /**
   * Bytes written at `pos` and hashed on the event loop (a small write):
   * now, or after the pool jobs before them (a copy waits); false if they
   * do not continue the digest.
   */
  add(pos: number, data: Buffer): boolean {
    if (this.broken || pos !== this.size) return false
    if (this.pending === 0) {
      this.addNow(data)
      return true
    }

    const copy = Buffer.from(data)
    this.pending += copy.length
    this.chain = this.chain.then(() => {
      try {
        if (!this.broken) this.addNow(copy)
      } finally {
        this.pending -= copy.length
      }
    })
    return true
  }

  private addNow(data: Buffer): void {
    let rest = data
    if (this.tail.length > 0) {
      const take = Math.min(64 - this.tail.length, rest.length)
      this.tail = Buffer.concat([this.tail, rest.subarray(0, take)])
      rest = rest.subarray(take)
      if (this.tail.length < 64) return
      this.state = stepNow(this.tail, this.state, this.blocks, false)
      this.blocks += 64
      this.tail = EMPTY
    }

    const whole = rest.length - (rest.length % 64)
    if (whole > 0) {
      this.state = stepNow(rest.subarray(0, whole), this.state, this.blocks, false)
      this.blocks += whole
    }

    this.tail = whole < rest.length ? Buffer.from(rest.subarray(whole)) : EMPTY
  }

  /** Until nothing is left to hash on the pool. */
  async settled(): Promise<void> {
    while (this.pending > 0) await this.chain
  }

  /** The digest of the bytes so far (hex); undefined while some are still to be hashed, or once broken. */
  digest(): string | undefined {
    if (this.broken || this.pending > 0) return undefined
    return stepNow(this.tail, this.state, this.blocks, true).toString('hex')
  }
}
