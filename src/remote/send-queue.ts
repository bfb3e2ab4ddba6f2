/**
 * A data channel connection's outgoing frames, handed to the TLS socket one
 * write at a time (the server's replies and read data, a mount's writes).
 *
 * Frames written while an earlier write is still under way wait in the
 * socket's Writable buffer, and Node then flushes them together with
 * `writev`; a TLS socket's writev first copies all of them into one fresh
 * zero-filled buffer before encrypting (up to the 4 MiB of reads the data
 * server lets queue). Profiled during a remote read, that copy and the page
 * faults of its fresh memory were about a quarter of the server's CPU. Here a
 * frame is written only once the write before it is done, so every write is
 * one buffer, encrypted straight from where it lies (a pooled read buffer);
 * the socket's own buffer in the kernel keeps the connection busy meanwhile.
 * Small frames waiting together (replies, ends) are joined into one write.
 */

/** frames smaller than this are joined with the ones queued behind them, up to this many bytes */
export const JOIN_BYTES = 64 * 1024

export interface SendTarget {
  write(buf: Buffer, cb: (error?: Error | null) => void): unknown
  end(): unknown
}

interface Item {
  buf: Buffer
  done?: () => void
}

export class SendQueue {
  private readonly items: Item[] = []
  private writing = false
  private closed = false
  /** end() was asked for: the socket is ended (with this last frame) once the queue is empty */
  private ending?: {last?: Buffer}
  /** bytes given to send() whose write is not done yet */
  bytes = 0

  /** `onWritten`: after each write is done (a waiting sender may check `bytes` again) */
  constructor(private readonly target: SendTarget, private readonly onWritten: () => void = () => {}) {}

  /** Queues a frame; `done` runs once it is written (or the queue is closed), after which buf may be reused. */
  send(buf: Buffer, done?: () => void): void {
    if (this.closed || this.ending) return done?.()
    this.items.push({buf, done})
    this.bytes += buf.length
    this.pump()
  }

  /** Ends the socket (with a last frame) once what is queued is written; later frames are dropped. */
  end(last?: Buffer): void {
    if (this.closed || this.ending) return
    this.ending = {last}
    this.pump()
  }

  /** Frames not written yet are dropped (their `done` runs). */
  close(): void {
    this.closed = true
    for (const i of this.items.splice(0)) i.done?.()
    this.bytes = 0
  }

  private pump(): void {
    if (this.writing || this.closed) return
    if (this.items.length === 0) {
      if (this.ending) {
        this.closed = true
        if (this.ending.last) this.target.write(this.ending.last, () => {})
        this.target.end()
      }

      return
    }

    let n = 1
    let size = this.items[0].buf.length
    if (size < JOIN_BYTES) {
      while (n < this.items.length && this.items[n].buf.length < JOIN_BYTES && size + this.items[n].buf.length <= JOIN_BYTES) size += this.items[n++].buf.length
    }

    const batch = this.items.splice(0, n)
    const buf = n === 1 ? batch[0].buf : Buffer.concat(batch.map(i => i.buf), size)
    this.writing = true
    this.target.write(buf, () => {
      this.writing = false
      if (!this.closed) this.bytes -= size
      for (const i of batch) i.done?.()
      this.pump()
      this.onWritten()
    })
  }
}
