/**
 * The client's end of one WriteStream call (protocol 2): encoded WriteRequests
 * go out in order, and each is settled by the server's reply to it (replies
 * come in the order sent). A reply carrying an error, a gRPC failure, the
 * stream ending early, or silence while writes wait (`silenceMs`) fails every
 * write still waiting and the stream: the caller opens another for later
 * writes. No deadline per message: a stream lives as long as its file is
 * written.
 */
import type {EventEmitter} from 'node:events'
import {errnoError} from './wire.js'

/** What this class needs of a gRPC client duplex stream. */
export interface Duplex extends EventEmitter {
  write(msg: Buffer): boolean
  end(): void
  cancel(): void
}

interface Waiting {
  size: number
  resolve: () => void
  reject: (e: unknown) => void
}

type Reply = {count?: number | string; error?: {errno: string; message: string} | null}

export class WriteStream {
  private readonly waiting: Waiting[] = []
  private failure?: unknown
  private timer?: NodeJS.Timeout
  private ended = false

  /** `generation`: the connection's session the stream belongs to */
  constructor(private readonly stream: Duplex, private readonly errno: (e: unknown) => unknown, readonly generation: number, private readonly silenceMs = 60_000) {
    stream.on('data', (r: Reply) => this.answer(r))
    stream.on('error', (e: unknown) => this.fail(this.errno(e)))
    stream.on('end', () => this.fail(errnoError('EIO', 'the server ended the write stream')))
    // an ended stream's 'end' may never come if nothing is read: keep reading
    stream.on('close', () => this.fail(errnoError('EIO', 'the write stream closed')))
  }

  /** Whether the stream can take more writes. */
  get usable(): boolean {
    return this.failure === undefined && !this.ended
  }

  /** Writes not yet answered. */
  get pending(): number {
    return this.waiting.length
  }

  /** Sends one encoded WriteRequest of `size` data bytes; resolves when the server has written them all. */
  send(msg: Buffer, size: number): Promise<void> {
    if (!this.usable) return Promise.reject(this.failure ?? errnoError('EIO', 'write stream ended'))
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({size, resolve, reject})
      this.arm()
      this.stream.write(msg)
    })
  }

  private arm(): void {
    clearTimeout(this.timer)
    if (this.waiting.length === 0) return
    this.timer = setTimeout(() => {
      this.fail(errnoError('EIO', 'the server did not answer a write in time'))
      this.stream.cancel()
    }, this.silenceMs)
  }

  private answer(r: Reply): void {
    const w = this.waiting.shift()
    if (!w) return this.fail(errnoError('EIO', 'the server answered a write that was not sent'))
    this.arm()
    if (r.error?.errno) {
      const e = errnoError(r.error.errno, r.error.message)
      w.reject(e)
      return this.fail(e)
    }

    const count = Number(r.count)
    if (count !== w.size) {
      const e = errnoError('EIO', `short write: ${count} of ${w.size} bytes`)
      w.reject(e)
      return this.fail(e)
    }

    w.resolve()
  }

  private fail(e: unknown): void {
    this.failure ??= e
    clearTimeout(this.timer)
    for (const w of this.waiting.splice(0)) w.reject(this.failure)
  }

  /** No more writes (the waiting ones still get their answers). */
  end(): void {
    if (this.ended) return
    this.ended = true
    if (this.waiting.length === 0) clearTimeout(this.timer)
    try {
      this.stream.end()
    } catch { /* already gone */ }
  }

  /** Drops the stream (waiting writes fail). */
  cancel(): void {
    this.ended = true
    this.fail(errnoError('EIO', 'write stream cancelled'))
    this.stream.cancel()
  }
}
