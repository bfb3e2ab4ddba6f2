/**
 * The SHA-256 of a file written sequentially from its start, kept up to date
 * as the bytes pass (content.ts's InodeContent holds one per written inode).
 * It is kept as a chain state between 64-byte blocks (src/history/sha256.ts),
 * not as a Node Hash, so that a write of whole blocks can be hashed by the
 * same thread-pool job that pwrites it (sys.writeHashJob): a server's event
 * loop then neither copies the bytes into the page cache nor hashes them
 * (both were most of its time per MiB written). Bytes short of a whole block
 * wait in `tail` for the next write.
 */
import {stepNow} from '../history/sha256.js'
import {sys} from './sys.js'

const EMPTY = Buffer.alloc(0)

export class RunningDigest {
  private state: Buffer | null = null
  /** bytes the state covers (a multiple of 64) */
  private blocks = 0
  private tail: Buffer = EMPTY
  /** bytes of pool writes under way (dispatched, not finished) */
  private pending = 0
  /** the last pool write: the next one hashes from the state after it */
  private chain: Promise<void> = Promise.resolve()
  /** a write did not go as the digest needs (partial, failed): it no longer follows the bytes */
  broken = false

  /** Bytes it covers, counting writes under way. */
  get size(): number {
    return this.blocks + this.tail.length + this.pending
  }

  /** True if a write of `len` bytes at `pos` may go to the pool: whole blocks, right after whole blocks. */
  fitsPool(pos: number, len: number): boolean {
    return !this.broken && len > 0 && len % 64 === 0 && this.tail.length === 0 && pos === this.size
  }

  /**
   * pwrite and hash in one thread-pool job (the caller checked fitsPool);
   * resolves with the bytes written. Writes go to the pool one after the
   * other (each hashes from the state the one before left); `data` must not
   * change until it resolves.
   */
  writeOnPool(fd: number, data: Buffer, pos: number): Promise<number> {
    this.pending += data.length
    const before = this.chain
    const run = (async () => {
      await before
      const out = this.broken ? null : Buffer.allocUnsafe(32)
      let n: number
      try {
        n = await sys.writeHashJob(data, fd, pos, this.state, this.blocks, out)
      } catch (error) {
        this.broken = true
        throw error
      } finally {
        this.pending -= data.length
      }

      if (out && n === data.length) {
        this.state = out
        this.blocks += n
      } else {
        this.broken = true
      }

      return n
    })()
    this.chain = run.then(() => {}, () => {})
    return run
  }

  /** Bytes written at `pos` without the pool (synchronously): hashed now; false if they do not continue the digest. */
  add(pos: number, data: Buffer): boolean {
    if (this.broken || this.pending > 0 || pos !== this.size) return false
    let rest = data
    if (this.tail.length > 0) {
      const take = Math.min(64 - this.tail.length, rest.length)
      this.tail = Buffer.concat([this.tail, rest.subarray(0, take)])
      rest = rest.subarray(take)
      if (this.tail.length < 64) return true
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
    return true
  }

  /** Until no pool write is under way. */
  async settled(): Promise<void> {
    while (this.pending > 0) await this.chain
  }

  /** The digest of the bytes so far (hex); undefined while pool writes are under way or once broken. */
  digest(): string | undefined {
    if (this.broken || this.pending > 0) return undefined
    return stepNow(this.tail, this.state, this.blocks, true).toString('hex')
  }
}
