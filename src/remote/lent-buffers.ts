/**
 * The buffers a mount's data channel receives read data into, lent out in
 * pieces and used again once every piece is given back.
 *
 * A DATA frame's body (up to 1 MiB) is decrypted straight into one of these
 * (receive.ts, frame-assembler.ts) and handed to its read-ahead in pieces as
 * the TLS records arrive: views of the buffer, no copy. The read-ahead keeps
 * the pieces until the reader is past them and then gives each back. A buffer
 * whose frame is complete and whose pieces are all back is kept for the next
 * frame: a fresh 1 MiB buffer per frame was measured slower than Node's 16 KiB
 * buffer per record (V8 collects external memory with major GCs). A piece
 * that is never given back (a stream nobody reads, a channel that failed
 * mid-frame) only means its buffer is not used again: the garbage collector
 * takes it as any other (the bookkeeping is a WeakMap).
 */

interface Lent {
  /** pieces handed out and not given back */
  out: number
  /** the frame is still arriving into it */
  open: boolean
}

export class LentBuffers {
  private readonly free: Buffer[] = []
  private readonly lent = new WeakMap<ArrayBufferLike, Lent>()

  /** `size`: the buffers' size (larger requests get a buffer of their own, not kept); `keep`: free ones kept at most */
  constructor(readonly size: number, private readonly keep: number) {}

  /** A buffer of at least n bytes for a frame about to arrive. */
  get(n: number): Buffer {
    if (n > this.size) return Buffer.allocUnsafeSlow(n)
    const b = this.free.pop() ?? Buffer.allocUnsafeSlow(this.size)
    this.lent.set(b.buffer, {out: 0, open: true})
    return b
  }

  /** A piece of a buffer from get() goes out (`last`: the frame's last piece, the buffer is filled); call before handing it on. */
  handed(piece: Buffer, last: boolean): void {
    const l = this.lent.get(piece.buffer)
    if (!l) return
    l.out++
    if (last) l.open = false
  }

  /** The frame that filled this buffer ended without its piece going anywhere (nobody reads it). */
  dropped(piece: Buffer, last: boolean): void {
    const l = this.lent.get(piece.buffer)
    if (!l) return
    if (last) l.open = false
    this.maybeFree(piece.buffer, l)
  }

  /** A piece handed out is no longer referred to by anyone. Views of other buffers are ignored. */
  release = (piece: Buffer): void => {
    const l = this.lent.get(piece.buffer)
    if (!l || l.out === 0) return
    l.out--
    this.maybeFree(piece.buffer, l)
  }

  /** free buffers kept (tests) */
  get kept(): number {
    return this.free.length
  }

  private maybeFree(ab: ArrayBufferLike, l: Lent): void {
    if (l.open || l.out > 0) return
    this.lent.delete(ab)
    if (this.free.length < this.keep) this.free.push(Buffer.from(ab, 0, this.size))
  }
}
