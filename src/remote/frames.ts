/**
 * The data channel's framing (protocol 3), shared by client and server. The
 * data channel is a TLS connection beside the gRPC one that carries the
 * bytes of reads and writes and the unary calls; gRPC keeps opening the
 * session (and is the fallback). Every frame is
 *
 *   u32 length of what follows ‖ u8 type ‖ u32 request id ‖ body
 *
 * big-endian. Client to server: AUTH (once, first), WRITE, READ, CANCEL,
 * CALL (any unary call of paciofs.v1.Volume: u8 name length, the method's
 * name, its protobuf-encoded request). Server to client: NONCE (once,
 * first, id 0), OK (a write's u32 count, or a call's encoded reply), DATA,
 * END, ERROR (errno, message), STATUS (a refused call: u32 gRPC status code,
 * details). A frame
 * longer than MAX_FRAME, an unknown type, or a malformed body ends the
 * connection. No I/O here; frame-assembler.ts cuts the received bytes into
 * frames.
 */
import tls from 'node:tls'
import {MAX_MESSAGE} from './wire.js'

export const T = {
  AUTH: 1, WRITE: 2, READ: 3, CANCEL: 4, CALL: 5,
  NONCE: 0x80, OK: 0x81, DATA: 0x82, END: 0x83, ERROR: 0x84, STATUS: 0x85,
} as const

/**
 * WRITE flag: the client has reported the handle's earlier write failure to
 * its application; the server writes again. (Until then, every write of the
 * handle behind a failed one fails too: none lands after a hole.)
 */
export const WRITE_RESET = 1

/** u32 length, u8 type, u32 id */
export const FRAME_HEADER = 9
/** WRITE's fixed part after the header: u32 fh, u8 flags, u8 0, u48 offset, u32 uid, gid, pid */
export const WRITE_HEADER = FRAME_HEADER + 24
/** the longest frame either side accepts: a gRPC message's limit (a chunk and room for the other fields) and a frame header */
export const MAX_FRAME = 64 + MAX_MESSAGE
/**
 * The data channel's TLS cipher suites, in the order both ends prefer them:
 * Node's own list with AES-128-GCM first (Node puts AES-256-GCM first). Both
 * are authenticated encryption with AES-NI; measured on loopback (1 GiB, one
 * Node process to another, load 10-13), the receiver spent 1.4 s of CPU
 * instead of 1.8-2.0 s, and a remote mount's reads are received by the mount.
 */
export const DATA_CIPHERS = ['TLS_AES_128_GCM_SHA256', ...tls.DEFAULT_CIPHERS.split(':').filter(c => c !== 'TLS_AES_128_GCM_SHA256')].join(':')

/** the longest frame accepted before the connection is authenticated */
export const MAX_AUTH_FRAME = 4096

export interface Frame {
  type: number
  id: number
  /** the body (a view into the received bytes), or a piece of it (FrameAssembler's streamed types) */
  body: Buffer
  /** a piece of a streamed frame's body, and more of it follows */
  more?: boolean
}

/** Writes a frame header into buf at 0 for a frame of `total` bytes (header included). */
export function header(buf: Buffer, type: number, id: number, total: number): Buffer {
  buf.writeUInt32BE(total - 4, 0)
  buf[4] = type
  buf.writeUInt32BE(id >>> 0, 5)
  return buf
}

/** A whole frame with the given body. */
export function frame(type: number, id: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER + body.length)
  header(out, type, id, out.length)
  body.copy(out, FRAME_HEADER)
  return out
}

/** u16-length-prefixed strings and bytes, then the rest. */
export function packFields(...fields: Buffer[]): Buffer {
  const parts: Buffer[] = []
  for (const f of fields) {
    if (f.length > 0xFFFF) throw new RangeError('field too long')
    const len = Buffer.allocUnsafe(2)
    len.writeUInt16BE(f.length)
    parts.push(len, f)
  }

  return Buffer.concat(parts)
}

export function unpackFields(body: Buffer, count: number): Buffer[] | undefined {
  const out: Buffer[] = []
  let at = 0
  for (let i = 0; i < count; i++) {
    if (at + 2 > body.length) return undefined
    const len = body.readUInt16BE(at)
    at += 2
    if (at + len > body.length) return undefined
    out.push(body.subarray(at, at + len))
    at += len
  }

  return at === body.length ? out : undefined
}

export interface WriteHead {
  fh: number
  /** WRITE_RESET or 0 */
  flags: number
  offset: number
  uid: number
  gid: number
  pid: number
}

/** Writes a WRITE frame's header and fixed part into buf (the data follows at WRITE_HEADER). */
export function writeFrameHead(buf: Buffer, id: number, size: number, w: WriteHead): Buffer {
  header(buf, T.WRITE, id, WRITE_HEADER + size)
  buf.writeUInt32BE(w.fh >>> 0, 9)
  buf[13] = w.flags
  buf[14] = 0
  buf.writeUIntBE(w.offset, 15, 6)
  buf.writeUInt32BE(w.uid >>> 0, 21)
  buf.writeUInt32BE(w.gid >>> 0, 25)
  buf.writeUInt32BE(w.pid >>> 0, 29)
  return buf.subarray(0, WRITE_HEADER + size)
}

export function parseWrite(body: Buffer): (WriteHead & {data: Buffer}) | undefined {
  if (body.length < WRITE_HEADER - FRAME_HEADER) return undefined
  if (body[5] !== 0) return undefined
  return {fh: body.readUInt32BE(0), flags: body[4], offset: body.readUIntBE(6, 6), uid: body.readUInt32BE(12), gid: body.readUInt32BE(16), pid: body.readUInt32BE(20), data: body.subarray(24)}
}

export function readBody(fh: number, offset: number, length: number): Buffer {
  const b = Buffer.alloc(16)
  b.writeUInt32BE(fh >>> 0, 0)
  b.writeUIntBE(offset, 6, 6)
  b.writeUInt32BE(length >>> 0, 12)
  return b
}

export function parseRead(body: Buffer): {fh: number; offset: number; length: number} | undefined {
  if (body.length !== 16 || body.readUInt16BE(4) !== 0) return undefined
  return {fh: body.readUInt32BE(0), offset: body.readUIntBE(6, 6), length: body.readUInt32BE(12)}
}

export function callBody(method: string, request: Buffer): Buffer {
  const name = Buffer.from(method)
  const out = Buffer.allocUnsafe(1 + name.length + request.length)
  out[0] = name.length
  name.copy(out, 1)
  request.copy(out, 1 + name.length)
  return out
}

export function parseCall(body: Buffer): {method: string; request: Buffer} | undefined {
  if (body.length < 1 || body.length < 1 + body[0]) return undefined
  return {method: body.subarray(1, 1 + body[0]).toString(), request: body.subarray(1 + body[0])}
}

export function statusBody(code: number, details: string): Buffer {
  const d = Buffer.from(details.slice(0, 1000))
  const out = Buffer.allocUnsafe(4 + d.length)
  out.writeUInt32BE(code >>> 0, 0)
  d.copy(out, 4)
  return out
}

export function parseStatus(body: Buffer): {code: number; details: string} {
  return body.length >= 4 ? {code: body.readUInt32BE(0), details: body.subarray(4).toString()} : {code: 2, details: 'malformed status frame'}
}

export function errorBody(errno: string, message: string): Buffer {
  return packFields(Buffer.from(errno.slice(0, 32)), Buffer.from(message.slice(0, 1000)))
}

export function parseError(body: Buffer): {errno: string; message: string} {
  const f = unpackFields(body, 2)
  return f ? {errno: f[0].toString(), message: f[1].toString()} : {errno: 'EIO', message: 'malformed error frame'}
}
