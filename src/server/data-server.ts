/**
 * The data channel's server (protocol 3, framing in remote/frames.ts): a TLS
 * listener with the server's own certificate, beside the gRPC one, that
 * carries the bytes of reads and writes as length-prefixed frames. gRPC's
 * framing copies every 1 MiB message twice on each side (assembling it from
 * HTTP/2 frames, copying it behind its 5-byte header); here a write is
 * copied once out of the TLS records and a read not at all.
 *
 * A connection belongs to one session and does nothing else until it is
 * attached: the server sends a fresh nonce, the client answers with its
 * session's token, the volume's name and its member key's signature over
 * remote/auth.ts's dataTranscript (so a stolen token alone is not enough, and
 * a signature made for one volume or one connection does not open another).
 * Every request is then checked and run as the session's member by the
 * VolumeService, exactly as its gRPC calls are (handles of that session only;
 * a removed member is refused; the session's end closes the connection).
 * A CALL frame runs the service's own handler of a unary method with the
 * session's token, as if it had come on the session's gRPC connection: one
 * frame each way instead of an HTTP/2 stream per call.
 */
import {randomBytes} from 'node:crypto'
import * as grpc from '@grpc/grpc-js'
import type {AddressInfo} from 'node:net'
import tls from 'node:tls'
import {verify} from '../crypto/sign.js'
import {dataTranscript} from '../remote/auth.js'
import {FrameAssembler} from '../remote/frame-assembler.js'
import {DATA_CIPHERS, errorBody, frame, FRAME_HEADER, header, MAX_AUTH_FRAME, MAX_FRAME, parseCall, parseRead, parseWrite, statusBody, T, unpackFields, WRITE_RESET, type Frame} from '../remote/frames.js'
import {receiveInto} from '../remote/receive.js'
import {errnoError, MAX_CHUNK, MAX_MESSAGE, MAX_STREAM, SESSION_METADATA, serviceDefinition} from '../remote/wire.js'
import {SendQueue} from '../remote/send-queue.js'
import type {VolumeService} from './service.js'
import type {Session} from './sessions.js'
import type {ServerTls} from './tls.js'

/** Time a new connection has to attach itself to a session. */
const AUTH_MS = 10_000
/** Bytes of received writes waiting to be written per connection, beyond which it is not read (TCP then stops the client). */
const WRITES_QUEUED_BYTES = 16 * MAX_CHUNK
/** Bytes of read replies waiting in a connection's socket, beyond which a read stream waits. */
const READS_QUEUED_BYTES = 4 * MAX_CHUNK

export interface DataServerOptions {
  host: string
  port: number
  tls: ServerTls
  service: VolumeService
  onEvent?(message: string): void
}

export interface DataServer {
  port: number
  close(): Promise<void>
}

/** The unary methods a CALL frame may run (not the handshake, not the streams). */
function unaryHandlers(service: VolumeService): Map<string, {handler: grpc.handleUnaryCall<unknown, unknown>; def: grpc.MethodDefinition<unknown, unknown>}> {
  const defs = serviceDefinition()
  const handlers = service.handlers()
  const out = new Map<string, {handler: grpc.handleUnaryCall<unknown, unknown>; def: grpc.MethodDefinition<unknown, unknown>}>()
  for (const [name, def] of Object.entries(defs)) {
    if (def.requestStream || def.responseStream || name === 'Hello') continue
    out.set(name, {handler: handlers[name] as grpc.handleUnaryCall<unknown, unknown>, def: def as grpc.MethodDefinition<unknown, unknown>})
  }

  return out
}

type Unary = ReturnType<typeof unaryHandlers>

/**
 * Buffers of a whole frame, kept for the next one: a 1 MiB buffer per write
 * received and per chunk read was most of the server's garbage collection.
 */
class FramePool {
  private readonly free: Buffer[] = []
  private readonly mine = new WeakSet<ArrayBufferLike>()
  constructor(private readonly size: number, private readonly keep: number) {}

  get(n: number): Buffer {
    if (n > this.size) return Buffer.allocUnsafe(n)
    const b = this.free.pop() ?? Buffer.allocUnsafeSlow(this.size)
    this.mine.add(b.buffer)
    return b
  }

  /** Gives back a buffer from get() (or any view of one) once nothing refers to it; others are ignored. */
  put(view: Buffer): void {
    if (!this.mine.has(view.buffer) || this.free.length >= this.keep) return
    this.mine.delete(view.buffer) // put once
    this.free.push(Buffer.from(view.buffer, 0, this.size))
  }
}

export async function startDataServer(opts: DataServerOptions): Promise<DataServer> {
  const unary = unaryHandlers(opts.service)
  const pool = new FramePool(FRAME_HEADER + MAX_CHUNK + 64, 32)
  const sockets = new Set<tls.TLSSocket>()
  const server = tls.createServer({key: opts.tls.key, cert: opts.tls.cert, minVersion: 'TLSv1.2', ciphers: DATA_CIPHERS, honorCipherOrder: true}, socket => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    serveConnection(socket, opts, unary, pool)
  })
  server.on('tlsClientError', () => {}) // a client that fails the handshake: nothing to serve
  const host = opts.host.replace(/^\[|\]$/g, '')
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  return {
    port: (server.address() as AddressInfo).port,
    async close() {
      await new Promise<void>(resolve => {
        server.close(() => resolve())
        for (const s of sockets) s.destroy()
      })
    },
  }
}

function serveConnection(socket: tls.TLSSocket, opts: DataServerOptions, unary: Unary, pool: FramePool): void {
  socket.setNoDelay(true)
  const peer = `${socket.remoteAddress}:${socket.remotePort}`
  const nonce = randomBytes(32)
  const reader = new FrameAssembler(MAX_AUTH_FRAME, n => pool.get(n))
  let session: Session | undefined
  let closed = false
  let unhook: (() => void) | undefined
  /** per server handle: the chain of its writes (run in the order received), and a failure not yet reset */
  const chains = new Map<number, Promise<void>>()
  const failed = new Map<number, NodeJS.ErrnoException>()
  const reading = new Set<number>()
  const cancelled = new Set<number>()
  let queuedBytes = 0
  let drainWaiters: Array<() => void> = []
  // one write at a time (send-queue.ts: no writev copying the frames together); a read waits while more than READS_QUEUED_BYTES wait
  const out = new SendQueue(socket, () => {
    if (out.bytes <= READS_QUEUED_BYTES) for (const w of drainWaiters.splice(0)) w()
  })

  const close = () => {
    if (closed) return
    closed = true
    unhook?.()
    out.close()
    socket.destroy()
    for (const w of drainWaiters.splice(0)) w()
  }

  /**
   * The session ended: what is under way is answered (the service refuses
   * anything new as it does on gRPC: an ended session), then the connection
   * closes. So a client learns how each request ended, and why.
   */
  let ended = false
  let pending = 0
  let closing: NodeJS.Timeout | undefined
  const ending = () => {
    ended = true
    setTimeout(close, 30_000).unref() // whatever is still under way by then
    if (pending === 0) closeSoon()
  }

  // a request that crossed the end on the way is still answered (refused: the session ended)
  const closeSoon = () => {
    closing ??= setTimeout(() => {
      if (closed) return
      out.end()
      setTimeout(close, 2_000).unref()
    }, 1_000).unref()
  }

  const started = () => {
    pending++
  }

  const finished = () => {
    if (--pending === 0 && ended) closeSoon()
  }

  const refuse = (reason: string) => {
    opts.onEvent?.(`refused a data channel from ${peer}: ${reason}`)
    if (!closed) out.end(frame(T.ERROR, 0, errorBody('EACCES', reason)))
    setTimeout(close, 1_000).unref()
  }

  const send = (buf: Buffer, done?: () => void): void => {
    if (closed) return done?.()
    out.send(buf, done)
  }

  const answerError = (id: number, error: unknown) => {
    const e = error as NodeJS.ErrnoException
    send(frame(T.ERROR, id, errorBody(typeof e?.code === 'string' ? e.code : 'EIO', String(e?.message ?? error))))
  }

  const authTimer = setTimeout(() => refuse('no authentication in time'), AUTH_MS)
  authTimer.unref()
  socket.on('close', close)
  socket.on('error', close)
  send(frame(T.NONCE, 0, nonce))

  const attach = (f: Frame) => {
    clearTimeout(authTimer)
    const fields = f.type === T.AUTH ? unpackFields(f.body, 3) : undefined
    if (!fields) return refuse('the first frame must authenticate the connection')
    const [token, volume, signature] = fields
    const s = opts.service.sessions.get(token.toString())
    if (!s || s.ended) return refuse('unknown or ended session')
    if (volume.toString() !== s.served.name) return refuse(`the session is for volume ${s.served.name}, not ${JSON.stringify(volume.toString()).slice(0, 100)}`)
    if (!verify(s.member, dataTranscript(nonce, opts.service.fingerprint, s.served.name, s.member), signature)) return refuse('the signature does not verify for the session\'s member')
    if (!s.served.members.has(s.member)) return refuse(`${s.member.slice(0, 16)}… is no longer a member of volume ${s.served.name}`)
    session = s
    reader.limit = MAX_FRAME
    unhook = opts.service.onSessionEnd(s, ending)
    send(frame(T.OK, f.id))
  }

  const write = (s: Session, f: Frame) => {
    const w = parseWrite(f.body)
    if (!w) return refuse('malformed write')
    if (w.data.length > MAX_CHUNK) return answerError(f.id, errnoError('EFBIG', `a write carries at most ${MAX_CHUNK} bytes`))
    if (w.flags & WRITE_RESET) failed.delete(w.fh)
    queuedBytes += w.data.length
    started()
    if (queuedBytes > WRITES_QUEUED_BYTES) socket.pause()
    const run = async () => {
      const earlier = failed.get(w.fh)
      if (earlier) throw earlier // written behind a failed write: not written either (the client reports the first)
      return opts.service.dataOp(s, 'data-write', w.fh, (volume, h) => volume.write(h.path, h.fh, w.data, w.data.length, w.offset, {uid: w.uid, gid: w.gid, pid: w.pid}))
    }

    const next = (chains.get(w.fh) ?? Promise.resolve()).then(run).then(count => {
      const b = Buffer.allocUnsafe(FRAME_HEADER + 4)
      header(b, T.OK, f.id, b.length).writeUInt32BE(count, FRAME_HEADER)
      send(b)
    }, error => {
      if (!failed.has(w.fh)) failed.set(w.fh, error as NodeJS.ErrnoException)
      answerError(f.id, error)
    }).finally(() => {
      queuedBytes -= w.data.length
      if (queuedBytes <= WRITES_QUEUED_BYTES / 2 && socket.isPaused() && !closed) socket.resume()
      if (chains.get(w.fh) === next) chains.delete(w.fh)
      pool.put(f.body)
      finished()
    })
    chains.set(w.fh, next)
  }

  const read = async (s: Session, f: Frame) => {
    const r = parseRead(f.body)
    if (!r) return refuse('malformed read')
    if (reading.has(f.id)) return refuse('a read id in use')
    reading.add(f.id)
    started()
    let offset = r.offset
    let left = Math.min(r.length, MAX_STREAM)
    try {
      while (left > 0 && !closed && !cancelled.has(f.id)) {
        const len = Math.min(left, MAX_CHUNK)
        const buf = pool.get(FRAME_HEADER + len)
        let n: number
        try {
          n = await opts.service.dataOp(s, 'data-read', r.fh, (volume, h) => (volume.readOffThread ?? volume.read).call(volume, h.path, h.fh, buf.subarray(FRAME_HEADER, FRAME_HEADER + len), len, offset))
        } catch (error) {
          pool.put(buf)
          throw error
        }

        header(buf, T.DATA, f.id, FRAME_HEADER + n)
        send(buf.subarray(0, FRAME_HEADER + n), () => pool.put(buf))
        offset += n
        left -= n
        if (n < len) break
        while (out.bytes > READS_QUEUED_BYTES && !closed) await new Promise<void>(resolve => drainWaiters.push(resolve))
      }

      send(frame(T.END, f.id))
    } catch (error) {
      answerError(f.id, error)
    } finally {
      reading.delete(f.id)
      cancelled.delete(f.id)
      finished()
    }
  }

  const call = (s: Session, f: Frame) => {
    const c = parseCall(f.body)
    const m = c && unary.get(c.method)
    if (!c || !m) return refuse(`no unary method ${JSON.stringify(c?.method ?? '').slice(0, 100)}`)
    let request: unknown
    try {
      request = m.def.requestDeserialize(c.request)
    } catch {
      return send(frame(T.STATUS, f.id, statusBody(grpc.status.INTERNAL, 'malformed request')))
    }

    const metadata = new grpc.Metadata()
    metadata.set(SESSION_METADATA, s.token)
    started()
    // the session's own handler, as if on its gRPC connection (this one is attached to the session)
    const fake = {request, metadata, getPeer: () => s.peer, cancelled: false} as unknown as grpc.ServerUnaryCall<unknown, unknown>
    m.handler(fake, (error, reply) => {
      finished()
      if (error) {
        const e = error as grpc.ServiceError
        send(frame(T.STATUS, f.id, statusBody(typeof e.code === 'number' ? e.code : grpc.status.UNKNOWN, String(e.details ?? e.message))))
        return
      }

      let out: Buffer
      try {
        out = m.def.responseSerialize(reply)
      } catch (error) {
        send(frame(T.STATUS, f.id, statusBody(grpc.status.INTERNAL, (error as Error).message)))
        return
      }

      if (out.length > MAX_MESSAGE) send(frame(T.STATUS, f.id, statusBody(grpc.status.RESOURCE_EXHAUSTED, `the reply has ${out.length} bytes, more than ${MAX_MESSAGE}`)))
      else send(frame(T.OK, f.id, out))
    })
  }

  // the received bytes go straight into the frames' buffers (a write's into a pooled one, written from there)
  receiveInto(socket, reader, {
    onError: error => refuse(error.message),
    onFrames: frames => {
      for (const f of frames) {
        if (closed) return
        if (!session) {
          attach(f)
          continue
        }

        switch (f.type) {
          case T.WRITE: write(session, f); break
          case T.READ: void read(session, f); break
          case T.CALL: call(session, f); break
          case T.CANCEL: if (reading.has(f.id)) cancelled.add(f.id); break
          default: return refuse(`unknown frame type ${f.type}`)
        }
      }
    },
  })
}
