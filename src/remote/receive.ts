/**
 * Feeds a data channel socket's bytes to a FrameAssembler, decrypted
 * straight into the assembler's buffers where Node allows it.
 *
 * Node's TLS socket hands its reader every 16 KiB TLS record as a Buffer of
 * its own (a malloc, an ArrayBuffer, a stream 'data' event each: 65,536 per
 * GiB), and the frame reader then copied them into the frame. With a
 * socket's `onread` option ({buffer, callback}: the user-buffer mode of
 * Node's stream handles) the record is decrypted into a buffer the reader
 * chooses and only its length is reported: one memcpy in Node, no Buffer, no
 * event. Measured, one Node process receiving 1 GiB from another over TLS on
 * loopback: 1.0-1.2 CPU s instead of 1.8-2.1 s.
 *
 * Both ends read this way: the mount's data channel (data-channel.ts) with
 * `tls.connect`'s `onread`, its DATA bodies landing in lent buffers
 * (lent-buffers.ts); the server's connections (data-server.ts) as below.
 * `tls.connect` takes `onread`; a server's sockets come from `tls.Server`,
 * which does not pass it on, so for those the same three fields of the
 * socket that `onread` sets (found by their symbols' descriptions) are set
 * here, before any application data has arrived (the server speaks first on
 * the data channel). If Node's internals differ (another major version) the
 * socket is read with 'data' events as before, one copy more: `mode` says
 * which.
 */
import type tls from 'node:tls'
import type {FrameAssembler} from './frame-assembler.js'
import type {Frame} from './frames.js'

export type ReceiveMode = 'direct' | 'data'

export interface Receiver {
  /** handles each read's frames; a throw (a malformed stream) goes to onError */
  onFrames(frames: Frame[]): void
  onError(error: Error): void
}

/** The `onread` option for tls.connect: the socket reads into the assembler's buffers. */
export function onreadOption(a: FrameAssembler, r: Receiver): {buffer: () => Buffer; callback: (n: number) => boolean} {
  return {buffer: () => a.room(), callback: n => deliver(a, n, r)}
}

function deliver(a: FrameAssembler, n: number, r: Receiver): boolean {
  let frames: Frame[]
  try {
    frames = a.filled(n)
  } catch (error) {
    r.onError(error as Error)
    return false
  }

  if (frames.length > 0) r.onFrames(frames)
  return true
}

const symbols = ['kBuffer', 'kBufferGen', 'kBufferCb'] as const

/**
 * Makes an accepted TLS socket read into the assembler's buffers (or, where
 * that is not possible, feed it its 'data' chunks). Call before any
 * application data can have arrived.
 */
export function receiveInto(socket: tls.TLSSocket, a: FrameAssembler, r: Receiver): ReceiveMode {
  const own = Object.getOwnPropertySymbols(socket)
  const keys = symbols.map(d => own.find(s => s.description === d))
  const handle = (socket as unknown as {_handle?: {useUserBuffer?: (b: Uint8Array) => void}})._handle
  const s = socket as unknown as Record<symbol, unknown>
  if (keys.every(k => k !== undefined && s[k] === null) && typeof handle?.useUserBuffer === 'function' && socket.readableLength === 0 && process.env.PACIOFS_DIRECT_RECEIVE !== '0') {
    const [kBuffer, kBufferGen, kBufferCb] = keys as symbol[]
    const first = a.room()
    s[kBuffer] = first
    s[kBufferGen] = () => a.room()
    s[kBufferCb] = (n: number) => deliver(a, n, r)
    handle.useUserBuffer(first)
    return 'direct'
  }

  receiveData(socket, a, r)
  return 'data'
}

/** Feeds a socket's 'data' chunks to the assembler (one copy each: where user-buffer reading is not used). */
export function receiveData(socket: tls.TLSSocket, a: FrameAssembler, r: Receiver): void {
  socket.on('data', (chunk: Buffer) => {
    let frames: Frame[]
    try {
      frames = a.push(chunk)
    } catch (error) {
      return r.onError(error as Error)
    }

    if (frames.length > 0) r.onFrames(frames)
  })
}
