/**
 * The hash states a capture keeps after each chunk (its marks, 32 bytes
 * each), copied into blocks of their own. A small Buffer from Buffer.from()
 * or allocUnsafe() is a piece of Node's shared 8 KiB pool and keeps the whole
 * block alive: in a busy mount every other record allocates from the pool
 * between two chunks, so each mark of a 1 GiB capture held its own block
 * (4,096 x 8 KiB = 32 MiB for 128 KiB of marks, measured: 572 marks held
 * 4.5 MB in a heap snapshot).
 */
export const MARK_SIZE = 32
/** marks in the first block; each next block is twice as large, up to MAX_BLOCK_MARKS */
const FIRST_BLOCK_MARKS = 8
const MAX_BLOCK_MARKS = 1024

export class MarkBlocks {
  private block = Buffer.alloc(0)
  private used = 0
  private next = FIRST_BLOCK_MARKS

  /** A copy of `state` (MARK_SIZE bytes) in a block that holds marks only. */
  copy(state: Buffer): Buffer {
    if (this.used + MARK_SIZE > this.block.length) {
      this.block = Buffer.allocUnsafeSlow(this.next * MARK_SIZE)
      this.used = 0
      this.next = Math.min(this.next * 2, MAX_BLOCK_MARKS)
    }

    const mark = this.block.subarray(this.used, this.used + MARK_SIZE)
    state.copy(mark, 0, 0, MARK_SIZE)
    this.used += MARK_SIZE
    return mark
  }
}
