/**
 * Cuts the data channel's byte stream into frames (frames.ts) with the
 * received bytes written straight to where they end up: the socket asks
 * room() where to put the next bytes and says filled(n) once n of them are
 * there (receive.ts: Node's `onread` with a buffer of ours, so TLS decrypts
 * into it, with no Buffer, no stream event and no copy per 16 KiB record).
 *
 * Small frames (headers, calls, replies: up to SMALL bytes) are gathered in
 * a scratch buffer and copied out whole. A larger frame gets a buffer of its
 * own from `alloc` once its header is in: what of it is already in the
 * scratch is copied there, and room() is then the rest of that buffer, so a
 * 1 MiB write lands where the server writes it from. Frames of the types
 * `streamed` names come out in pieces as they arrive (views of their own
 * buffer, never reused by the assembler; each with `more` but the last; an
 * empty body is one empty piece): the mount's read data, handed to the
 * read-ahead before the rest of its 1 MiB frame is here. It is the data
 * channel's only frame parser, on both ends. push(chunk) feeds bytes received the usual
 * way (one copy). A frame longer than `limit`, or shorter than its header,
 * throws a RangeError; after that the assembler is not to be used again.
 */
import {FRAME_HEADER, type Frame} from './frames.js'

/** frames up to this size are gathered in the scratch buffer and copied out */
export const SMALL = 16 * 1024
const SCRATCH = 4 * SMALL

interface Big {
  type: number
  id: number
  /** non-streamed: the whole frame (header included); streamed: its body only */
  buf: Buffer
  /** bytes of buf received */
  have: number
  streamed: boolean
}

export class FrameAssembler {
  private readonly scratch = Buffer.allocUnsafeSlow(SCRATCH)
  /** bytes at the start of the scratch buffer not yet cut into frames */
  private used = 0
  /** a large frame being received into a buffer of its own */
  private big?: Big
  /** frames longer than this are refused */
  limit: number

  /**
   * `alloc(n)`: a buffer of at least n bytes for a large frame (a non-streamed
   * frame's body is a view of it, from FRAME_HEADER); `streamed`: the types
   * whose bodies come out in pieces
   */
  constructor(limit: number, private readonly alloc: (n: number) => Buffer = n => Buffer.allocUnsafeSlow(n), private readonly streamed?: (type: number) => boolean) {
    this.limit = limit
  }

  /** Where the next received bytes go (never empty). */
  room(): Buffer {
    const b = this.big
    return b ? b.buf.subarray(b.have) : this.scratch.subarray(this.used)
  }

  /** n bytes were received into room(); returns the frames (and pieces) complete now. */
  filled(n: number): Frame[] {
    const out: Frame[] = []
    const b = this.big
    if (b) {
      const from = b.have
      b.have += n
      const done = b.have === b.buf.length
      if (b.streamed) out.push({type: b.type, id: b.id, body: b.buf.subarray(from, b.have), more: !done})
      else if (done) out.push({type: b.type, id: b.id, body: b.buf.subarray(FRAME_HEADER)})
      if (done) this.big = undefined
      return out
    }

    this.used += n
    this.cut(out)
    return out
  }

  /** Bytes received as a chunk of their own: copied into room() as it comes. */
  push(chunk: Buffer): Frame[] {
    const out: Frame[] = []
    for (let at = 0; at < chunk.length;) {
      const room = this.room()
      const k = chunk.copy(room, 0, at, Math.min(chunk.length, at + room.length))
      at += k
      for (const f of this.filled(k)) out.push(f)
    }

    return out
  }

  /** Cuts the scratch buffer's whole frames; a large frame's start moves to a buffer of its own; the rest moves to the front. */
  private cut(out: Frame[]): void {
    const s = this.scratch
    let at = 0
    while (this.used - at >= 4) {
      const total = s.readUInt32BE(at) + 4
      if (total < FRAME_HEADER || total > this.limit) throw new RangeError(`a frame of ${total} bytes (at least ${FRAME_HEADER}, at most ${this.limit})`)
      const here = this.used - at
      if (here < FRAME_HEADER) break
      const type = s[at + 4]
      const id = s.readUInt32BE(at + 5)
      const streamed = this.streamed?.(type) ?? false
      if (here >= total && total <= SMALL) {
        // whole in the scratch buffer: copied out (the scratch buffer is reused)
        const body = Buffer.allocUnsafe(total - FRAME_HEADER)
        s.copy(body, 0, at + FRAME_HEADER, at + total)
        out.push(streamed ? {type, id, body, more: false} : {type, id, body})
        at += total
        continue
      }

      if (total <= SMALL) break // the rest of a small frame is still to come
      // a large frame: everything from its header on in the scratch buffer is its (it is not whole)
      const got = Math.min(here, total)
      if (streamed) {
        const buf = this.alloc(total - FRAME_HEADER).subarray(0, total - FRAME_HEADER)
        const k = s.copy(buf, 0, at + FRAME_HEADER, at + got)
        if (k > 0) out.push({type, id, body: buf.subarray(0, k), more: k < buf.length}) // (a large frame has a body)
        this.big = k < buf.length ? {type, id, buf, have: k, streamed} : undefined
      } else {
        const buf = this.alloc(total).subarray(0, total)
        s.copy(buf, 0, at, at + got)
        this.big = {type, id, buf, have: got, streamed}
        if (got === total) {
          out.push({type, id, body: buf.subarray(FRAME_HEADER)})
          this.big = undefined
        }
      }

      at += got
      if (this.big) break // the scratch buffer held nothing beyond it
    }

    if (at > 0) {
      s.copyWithin(0, at, this.used)
      this.used -= at
    }
  }
}
