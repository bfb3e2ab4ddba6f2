/**
 * Read-ahead of one file handle over ReadStream calls: while a reader goes
 * through a file in order, up to two windows of WINDOW bytes are streamed
 * ahead of it (the next one is asked for when less than a window is left
 * ahead), so the data flows without a round trip per chunk. Memory per handle
 * is bounded by two windows. Data older than `ttlMs` is not served (another
 * client may have written since). Anything unexpected (a jump, a stream
 * error, a stream that stays silent) makes `read` answer `undefined`: the
 * caller drops this read-ahead and reads with an ordinary call, which reports
 * errors as usual.
 */
import type {EventEmitter} from 'node:events'

/** What a ReadStream call looks like to this class: chunk replies, then end or error. */
export interface ChunkStream extends EventEmitter {
  cancel(): void
}

export type OpenStream = (offset: number, length: number) => Promise<ChunkStream>

interface Chunk {
  offset: number
  data: Buffer
  at: number
  /** gives the data back to whoever lent it (the data channel's buffers), once it is dropped here */
  release?: (data: Buffer) => void
}

/** A stream's 'data': a piece of the file, or the error that ended it; `release` (if given) is called once the piece is dropped. */
export interface ChunkReply {
  data?: Buffer
  error?: {errno: string} | null
  release?: (data: Buffer) => void
}

interface Window {
  stream?: ChunkStream
  /** where the next chunk of this window starts */
  next: number
  end: number
  done: boolean
  /** the file ended inside this window (at `next`) */
  eof: boolean
  failed: boolean
}

export const WINDOW = 4 * 1024 * 1024
/** Data kept behind the furthest read: the kernel's reads of a handle come concurrently, not always in order. */
export const TRAIL = 2 * 1024 * 1024

export class ReadAhead {
  private readonly chunks: Chunk[] = []
  private readonly windows: Window[] = []
  /** where the next window starts */
  private ahead: number
  /** readers waiting for data (the kernel may have several reads of a handle under way) */
  private readonly wakers = new Set<() => void>()
  private closed = false
  /** the furthest any read got to */
  private furthest = 0
  /** something went wrong (a stream failed or fell silent, or its data grew old): read without it from now on */
  broken = false

  constructor(private readonly open: OpenStream, start: number, private readonly opts: {window?: number; ttlMs?: number; silenceMs?: number; now?: () => number} = {}) {
    this.ahead = start
    this.furthest = start
    this.request()
  }

  private get window(): number {
    return this.opts.window ?? WINDOW
  }

  private now(): number {
    return (this.opts.now ?? Date.now)()
  }

  /** Asks for the next window. */
  private request(): void {
    const w: Window = {next: this.ahead, end: this.ahead + this.window, done: false, eof: false, failed: false}
    this.ahead = w.end
    this.windows.push(w)
    const fail = () => {
      w.failed = true
      w.done = true
      this.poke()
    }

    this.open(w.next, this.window).then(stream => {
      if (this.closed) return stream.cancel()
      w.stream = stream
      stream.on('data', (reply: ChunkReply) => {
        if (this.closed) return reply.data && reply.release?.(reply.data)
        if (reply.error?.errno || !reply.data) return fail()
        if (reply.data.length > 0) this.keep({offset: w.next, data: reply.data, at: this.now(), release: reply.release})
        else reply.release?.(reply.data)
        w.next += reply.data.length
        if (reply.data.length === 0) w.eof = true
        this.poke()
      })
      stream.on('error', fail)
      stream.on('end', () => {
        w.done = true
        if (w.next < w.end && !w.failed) w.eof = true // the server stops early only at the end of the file
        this.poke()
      })
    }, fail)
  }

  /** Windows stream side by side: chunks are kept in file order. */
  private keep(c: Chunk): void {
    const last = this.chunks.at(-1)
    if (!last || last.offset < c.offset) this.chunks.push(c)
    else this.chunks.splice(this.after(c.offset), 0, c)
  }

  private poke(): void {
    const all = [...this.wakers]
    this.wakers.clear()
    for (const w of all) w()
  }

  /**
   * Copies len bytes at pos into buf (fewer only at the end of the file, 0
   * there): the count, or undefined if this read-ahead cannot serve pos.
   */
  async read(buf: Buffer, len: number, pos: number): Promise<number | undefined> {
    const first = this.windows[0]
    if (this.closed || !first) return undefined
    const start = this.chunks[0]?.offset ?? first.next
    if (pos < start || pos >= this.ahead) return undefined
    let got = 0 // copied so far (kept across waits: the chunks arrive in pieces)
    for (;;) {
      const n = this.copy(buf, got, len - got, pos + got)
      if (n === undefined) {
        this.broken = true
        return undefined
      }

      got += n
      // All of it, or up to the end of the file: FUSE takes a shorter count for the end of the file, so
      // bytes not here yet (a window still streaming, or the next one not asked for) are waited for.
      const at = pos + got
      if (got === len) {
        this.consumed(at)
        return got
      }

      const w = this.windows.find(x => at < x.end)
      if (!w) { // the read goes past every window asked for: ask for the next
        const asked = this.ahead
        this.consumed(at)
        if (this.ahead > asked) continue
        this.broken = true
        return undefined
      }
      if (w.failed) {
        this.broken = true
        return undefined
      }
      if (w.eof && at >= w.next) {
        if (got > 0) this.consumed(at)
        return got
      }
      if (w.done && at >= w.next) {
        this.broken = true
        return undefined
      }
      const silent = await new Promise<boolean>(resolve => {
        const wake = () => {
          clearTimeout(t)
          resolve(false)
        }

        const t = setTimeout(() => {
          this.wakers.delete(wake)
          resolve(true)
        }, this.opts.silenceMs ?? 15_000)
        this.wakers.add(wake)
      })
      if (silent || this.closed) {
        this.broken = true
        return undefined
      }
    }
  }

  /** Copies from the chunks at pos (contiguous ones, up to len) into buf at `into`; undefined if the data there is too old. */
  private copy(buf: Buffer, into: number, len: number, pos: number): number | undefined {
    let n = 0
    const ttl = this.opts.ttlMs ?? 1000
    const now = this.now()
    for (let i = this.after(pos); i < this.chunks.length && n < len; i++) {
      const c = this.chunks[i]
      const at = pos + n
      if (c.offset > at) break
      if (now - c.at >= ttl) return undefined
      n += c.data.copy(buf, into + n, at - c.offset, Math.min(c.data.length, at - c.offset + len - n))
    }

    return n
  }

  /** The index of the first chunk that ends after pos (the chunks are in file order and do not overlap). */
  private after(pos: number): number {
    let lo = 0
    let hi = this.chunks.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const c = this.chunks[mid]
      if (c.offset + c.data.length <= pos) lo = mid + 1
      else hi = mid
    }

    return lo
  }

  /** Whether a read at pos is ahead of everything asked for (the reader jumped: start again there). */
  beyond(pos: number): boolean {
    return pos >= this.ahead
  }

  /** A read got to `upTo`: drop what lies TRAIL behind the furthest read, and ask for more when less than a window is left. */
  private consumed(upTo: number): void {
    this.furthest = Math.max(this.furthest, upTo)
    const keep = this.furthest - TRAIL
    while (this.chunks.length > 0 && this.chunks[0].offset + this.chunks[0].data.length <= keep) drop(this.chunks.shift()!)
    while (this.windows.length > 1 && this.windows[0].end <= keep) this.windows.shift()
    const last = this.windows.at(-1)!
    if (!last.eof && !last.failed && this.ahead - this.furthest < this.window) this.request()
  }

  /** Stops every stream; the data is dropped. */
  close(): void {
    if (this.closed) return
    this.closed = true
    for (const w of this.windows) w.stream?.cancel()
    this.windows.length = 0
    for (const c of this.chunks.splice(0)) drop(c)
    this.poke()
  }
}

function drop(c: Chunk): void {
  c.release?.(c.data)
}
