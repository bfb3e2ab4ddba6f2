/**
 * The client's end of the data channel (protocol 3, frames.ts): one TLS
 * connection to the server's data port, its certificate pinned like the
 * gRPC channel's, attached to the current session by the session's token and
 * the member key's signature over the connection's nonce. Requests carry ids
 * and are answered in any order: writes (OK with the count, or ERROR) and
 * read streams (DATA frames, then END or ERROR). A read's data is decrypted
 * straight into a buffer lent by lent-buffers.ts (Node's user-buffer reading,
 * receive.ts: no Buffer, event or copy per 16 KiB TLS record) and handed to
 * its reader piece by piece as the TLS records arrive, each with a `release`
 * to give it back, so a FUSE read is answered as soon as its bytes are here,
 * not when the whole 1 MiB frame around them is.
 *
 * A connection that closes fails everything waiting with ENOTCONN; one that
 * stays silent while requests wait (`silenceMs`) is closed and they fail
 * with EIO. The user then opens another (or falls back to gRPC).
 */
import {EventEmitter} from 'node:events'
import tls from 'node:tls'
import {sign, type Identity} from '../crypto/sign.js'
import {certFingerprint, dataTranscript} from './auth.js'
import {FrameAssembler} from './frame-assembler.js'
import {callBody, DATA_CIPHERS, frame, MAX_FRAME, packFields, parseError, parseStatus, readBody, T, WRITE_HEADER, writeFrameHead, type Frame, type WriteHead} from './frames.js'
import {LentBuffers} from './lent-buffers.js'
import type {ChunkStream} from './read-ahead.js'
import {onreadOption, receiveData, type Receiver} from './receive.js'
import {SendQueue} from './send-queue.js'
import {errnoError, MAX_CHUNK} from './wire.js'

/**
 * free receive buffers a channel keeps (1 MiB each). While a file is read, a
 * buffer given back is taken by the next frame at once, so few are free at a
 * time; when a read-ahead closes, its ~10 come back, and these are kept.
 */
const LENT_KEPT = 4

export interface DataChannelOptions {
  host: string
  port: number
  /** the pinned certificate (PEM) and the hex sha256 of its DER */
  cert: string
  fingerprint: string
  token: string
  volume: string
  identity: Identity
  /** the connection's session it belongs to */
  generation: number
  timeoutMs?: number
  silenceMs?: number
}

interface Waiting {
  size: number
  resolve(): void
  reject(e: unknown): void
}

interface Calling {
  resolve(reply: Buffer): void
  reject(e: unknown): void
  timer: NodeJS.Timeout
}

/** A call refused by the server, shaped like a gRPC ServiceError (code, details). */
export class CallStatus extends Error {
  constructor(readonly code: number, readonly details: string) {
    super(details)
  }
}

/** A read stream as read-ahead.ts takes it: 'data' {data}, then 'end' or 'error'. */
class FrameStream extends EventEmitter implements ChunkStream {
  constructor(private readonly onCancel: () => void) {
    super()
    this.on('error', () => {}) // a failure before the reader listens is not an uncaught one
  }

  cancel(): void {
    this.onCancel()
  }
}

export class DataChannel {
  private readonly writes = new Map<number, Waiting>()
  private readonly reads = new Map<number, FrameStream>()
  private readonly calls = new Map<number, Calling>()
  private nextId = 1
  private failure?: unknown
  private timer?: NodeJS.Timeout

  /** frames out, one socket write at a time: a write's 1 MiB is encrypted from where it lies, not first copied together with the frames queued behind it (send-queue.ts) */
  private readonly out: SendQueue

  private constructor(private readonly socket: tls.TLSSocket, private readonly lent: LentBuffers, readonly generation: number, private readonly silenceMs: number) {
    this.out = new SendQueue(socket)
  }

  /** Connects, authenticates and resolves once the server accepted the channel. */
  static open(o: DataChannelOptions): Promise<DataChannel> {
    return new Promise<DataChannel>((resolve, reject) => {
      // a read's data is decrypted straight into a lent buffer (receive.ts) and goes to its reader piece
      // by piece as it arrives: not held back until a whole frame (1 MiB) is here, and not copied
      const lent = new LentBuffers(MAX_CHUNK, LENT_KEPT)
      const assembler = new FrameAssembler(MAX_FRAME, n => lent.get(n), type => type === T.DATA)
      let receiver: Receiver
      const receive: Receiver = {onFrames: f => receiver.onFrames(f), onError: e => receiver.onError(e)}
      const direct = process.env.PACIOFS_DIRECT_RECEIVE !== '0' // '0': with 'data' events, one copy more
      const socket = tls.connect({
        host: o.host, port: o.port, ca: o.cert, servername: 'paciofs-server', minVersion: 'TLSv1.2', ciphers: DATA_CIPHERS,
        checkServerIdentity: (_host, cert) => {
          const fp = cert.raw ? certFingerprint(cert.raw).toString('hex') : ''
          return fp === o.fingerprint ? undefined : new Error(`the data channel's certificate ${fp.slice(0, 16)}… is not the pinned one ${o.fingerprint.slice(0, 16)}…`)
        },
        ...(direct ? {onread: onreadOption(assembler, receive)} : {}),
      } as tls.ConnectionOptions)
      socket.setNoDelay(true)
      if (!direct) receiveData(socket, assembler, receive)
      let settled = false
      const fail = (e: unknown) => {
        if (settled) return
        settled = true
        clearTimeout(t)
        socket.destroy()
        reject(e)
      }

      const t = setTimeout(() => fail(errnoError('EIO', 'the data channel did not open in time')), o.timeoutMs ?? 5_000)
      socket.on('error', e => fail(errnoError('ENOTCONN', `data channel: ${e.message}`)))
      socket.on('close', () => fail(errnoError('ENOTCONN', 'the server closed the data channel')))
      receiver = {
        onError: error => fail(errnoError('EIO', `data channel: ${error.message}`)),
        onFrames: frames => {
          for (const [i, f] of frames.entries()) {
            if (settled) return
            if (f.type === T.NONCE && f.id === 0 && f.body.length === 32) {
              const fp = Buffer.from(o.fingerprint, 'hex')
              const signature = sign(o.identity, dataTranscript(f.body, fp, o.volume, o.identity.pid))
              socket.write(frame(T.AUTH, 1, packFields(Buffer.from(o.token), Buffer.from(o.volume), signature)))
            } else if (f.type === T.OK && f.id === 1) {
              settled = true
              clearTimeout(t)
              socket.removeAllListeners('error')
              socket.removeAllListeners('close')
              const ch = new DataChannel(socket, lent, o.generation, o.silenceMs ?? 60_000)
              receiver = ch.receiver()
              for (const later of frames.slice(i + 1)) ch.frame(later)
              resolve(ch)
              return
            } else if (f.type === T.ERROR) {
              const e = parseError(f.body)
              return fail(errnoError('EACCES', `the server refused the data channel: ${e.message}`))
            } else {
              return fail(errnoError('EIO', 'the data channel\'s handshake went wrong'))
            }
          }
        },
      }
    })
  }

  /** From now on the received frames are this channel's. */
  private receiver(): Receiver {
    this.socket.on('error', e => this.fail(errnoError('ENOTCONN', `data channel: ${e.message}`)))
    this.socket.on('close', () => this.fail(errnoError('ENOTCONN', 'the server closed the data channel')))
    return {
      onError: error => this.fail(errnoError('EIO', `data channel: ${error.message}`)),
      onFrames: frames => {
        if (this.failure !== undefined) return
        this.arm()
        for (const f of frames) this.frame(f)
      },
    }
  }

  /** The negotiated TLS version and cipher suite (diagnostics). */
  get cipher(): {version: string; name: string} {
    const c = this.socket.getCipher()
    return {version: c.version, name: c.name}
  }

  /** Whether requests may be sent. */
  get usable(): boolean {
    return this.failure === undefined
  }

  private id(): number {
    const id = this.nextId++
    if (this.nextId > 0xFFFF_FFF0) this.nextId = 2
    return id
  }

  /** A silence timer while anything waits: a server that stopped answering fails the channel. */
  private arm(): void {
    if (this.failure !== undefined) return
    if (this.writes.size === 0 && this.reads.size === 0) {
      clearTimeout(this.timer)
      this.timer = undefined
    } else if (this.timer) {
      this.timer.refresh() // (every TLS record of a read: cheaper than a new timer each)
    } else {
      this.timer = setTimeout(() => {
        this.timer = undefined
        if (this.writes.size > 0 || this.reads.size > 0) this.fail(errnoError('EIO', 'the server did not answer on the data channel in time'))
      }, this.silenceMs)
    }
  }

  private frame(f: Frame): void {
    if (f.type === T.OK || f.type === T.STATUS) {
      const c = this.calls.get(f.id)
      if (c) {
        this.calls.delete(f.id)
        clearTimeout(c.timer)
        if (f.type === T.OK) return c.resolve(f.body)
        const st = parseStatus(f.body)
        return c.reject(new CallStatus(st.code, st.details))
      }
    }

    if (f.type === T.OK) {
      const w = this.writes.get(f.id)
      if (!w) return
      this.writes.delete(f.id)
      const count = f.body.length === 4 ? f.body.readUInt32BE(0) : -1
      if (count === w.size) w.resolve()
      else w.reject(errnoError('EIO', `short write: ${count} of ${w.size} bytes`))
    } else if (f.type === T.DATA) {
      const r = this.reads.get(f.id)
      if (!r) return this.lent.dropped(f.body, !f.more) // a cancelled read's data still on its way
      this.lent.handed(f.body, !f.more)
      r.emit('data', {data: f.body, release: this.lent.release})
    } else if (f.type === T.END) {
      const r = this.reads.get(f.id)
      this.reads.delete(f.id)
      r?.emit('end')
    } else if (f.type === T.ERROR) {
      const e = parseError(f.body)
      const err = errnoError(e.errno, e.message)
      if (f.id === 0) return this.fail(errnoError('EACCES', `the server closed the data channel: ${e.message}`))
      const w = this.writes.get(f.id)
      if (w) {
        this.writes.delete(f.id)
        w.reject(err)
        return
      }

      const r = this.reads.get(f.id)
      this.reads.delete(f.id)
      r?.emit('data', {error: e})
      r?.emit('error', err)
    }
  }

  /**
   * Sends the write whose data sits in `buf` at `at`..`at`+size, with at least
   * WRITE_HEADER bytes free before it; resolves when the server wrote all of it.
   */
  write(buf: Buffer, at: number, size: number, head: WriteHead): Promise<void> {
    if (!this.usable) return Promise.reject(this.failure)
    if (size > MAX_CHUNK || at < WRITE_HEADER) return Promise.reject(errnoError('EINVAL', 'bad data channel write'))
    const id = this.id()
    return new Promise<void>((resolve, reject) => {
      this.writes.set(id, {size, resolve, reject})
      if (this.writes.size === 1 && this.reads.size === 0) this.arm()
      this.out.send(writeFrameHead(buf.subarray(at - WRITE_HEADER), id, size, head))
    })
  }

  /**
   * A unary call of paciofs.v1.Volume (its encoded request); resolves with the
   * encoded reply, rejects with a CallStatus if the server refused it, or an
   * EIO error if no answer came within deadlineMs.
   */
  call(method: string, request: Buffer, deadlineMs: number): Promise<Buffer> {
    if (!this.usable) return Promise.reject(this.failure)
    const id = this.id()
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.calls.delete(id)
        reject(errnoError('EIO', 'the server did not answer in time'))
      }, deadlineMs)
      this.calls.set(id, {resolve, reject, timer})
      this.out.send(frame(T.CALL, id, callBody(method, request)))
    })
  }

  /** Streams up to `length` bytes from offset (the server stops early only at the end of the file). */
  readStream(fh: number, offset: number, length: number): ChunkStream {
    const id = this.id()
    const s = new FrameStream(() => {
      if (this.reads.delete(id) && this.usable) this.out.send(frame(T.CANCEL, id))
    })
    if (!this.usable) {
      queueMicrotask(() => s.emit('error', this.failure))
      return s
    }

    this.reads.set(id, s)
    if (this.writes.size === 0 && this.reads.size === 1) this.arm()
    this.out.send(frame(T.READ, id, readBody(fh, offset, length)))
    return s
  }

  private fail(e: unknown): void {
    this.failure ??= e
    clearTimeout(this.timer)
    this.timer = undefined
    this.out.close()
    this.socket.destroy()
    for (const w of this.writes.values()) w.reject(this.failure)
    this.writes.clear()
    for (const c of this.calls.values()) {
      clearTimeout(c.timer)
      c.reject(this.failure)
    }
    this.calls.clear()
    const reads = [...this.reads.values()]
    this.reads.clear()
    for (const r of reads) r.emit('error', this.failure)
  }

  close(): void {
    this.fail(errnoError('ENOTCONN', 'data channel closed'))
  }
}
