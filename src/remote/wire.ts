/**
 * The wire protocol shared by client and server: the gRPC service loaded from
 * proto/paciofs/v1/volume.proto, its limits, and conversions between the
 * Volume API's values and protocol messages. No I/O besides loading the
 * .proto file once.
 */
import {BigIntStats, StatsFs} from 'node:fs'
import {fileURLToPath} from 'node:url'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'

/** The newest protocol version this code speaks (2: WriteStream; 3: the data channel, README). */
export const PROTOCOL_VERSION = 3
/** The oldest version a server still answers (1: every write a Write call). */
export const MIN_PROTOCOL_VERSION = 1
export const SERVICE = 'paciofs.v1.Volume'
/** The largest read or write payload one message carries. */
export const MAX_CHUNK = 1024 * 1024
/** The largest message either side accepts (a chunk plus headroom for the other fields). */
export const MAX_MESSAGE = MAX_CHUNK + 64 * 1024
/** The most one ReadStream call returns. */
export const MAX_STREAM = 16 * MAX_CHUNK
export const SESSION_METADATA = 'paciofs-session'

const PROTO = fileURLToPath(new URL('../../proto/paciofs/v1/volume.proto', import.meta.url))

let cached: grpc.ServiceDefinition | undefined
/**
 * The service definition (method paths, serializers). A Write request or a
 * Read reply given as a Buffer is taken as already encoded (see below).
 */
export function serviceDefinition(): grpc.ServiceDefinition {
  if (!cached) {
    const def = protoLoader.loadSync(PROTO, {keepCase: true, longs: String, enums: String, defaults: true, oneofs: false})
    const svc = {...(def[SERVICE] as grpc.ServiceDefinition)}
    const passBuffers = (f: (v: any) => Buffer) => (v: any) => (Buffer.isBuffer(v) ? v : f(v))
    svc.Write = {...svc.Write, requestSerialize: passBuffers(svc.Write.requestSerialize)}
    svc.WriteStream = {...svc.WriteStream, requestSerialize: passBuffers(svc.WriteStream.requestSerialize)}
    svc.Read = {...svc.Read, responseSerialize: passBuffers(svc.Read.responseSerialize)}
    svc.ReadStream = {...svc.ReadStream, responseSerialize: passBuffers(svc.ReadStream.responseSerialize)}
    cached = svc
  }

  return cached
}

export interface WireError {
  errno: string
  message: string
}

export interface WireCaller {
  uid: number
  gid: number
  pid: number
}

export interface WireStat {
  dev: string
  ino: string
  mode: number
  nlink: string
  uid: number
  gid: number
  rdev: string
  size: string
  blksize: string
  blocks: string
  atime_ns: string
  mtime_ns: string
  ctime_ns: string
  birthtime_ns: string
}

export function statToWire(s: BigIntStats): WireStat {
  return {
    dev: s.dev.toString(), ino: s.ino.toString(), mode: Number(s.mode), nlink: s.nlink.toString(), uid: Number(s.uid), gid: Number(s.gid),
    rdev: s.rdev.toString(), size: s.size.toString(), blksize: s.blksize.toString(), blocks: s.blocks.toString(),
    atime_ns: s.atimeNs.toString(), mtime_ns: s.mtimeNs.toString(), ctime_ns: s.ctimeNs.toString(), birthtime_ns: s.birthtimeNs.toString(),
  }
}

const S_IFMT = 0o170000

/** A BigIntStats-shaped object from a wire stat (what the FUSE binding reads from getattr). */
export function statFromWire(w: WireStat): BigIntStats {
  const ns = (v: string) => BigInt(v || '0')
  const mode = BigInt(w.mode)
  const at = ns(w.atime_ns)
  const mt = ns(w.mtime_ns)
  const ct = ns(w.ctime_ns)
  const bt = ns(w.birthtime_ns)
  const date = (v: bigint) => new Date(Number(v / 1_000_000n))
  const type = (t: number) => () => (Number(mode) & S_IFMT) === t
  return {
    dev: ns(w.dev), ino: ns(w.ino), mode, nlink: ns(w.nlink), uid: BigInt(w.uid), gid: BigInt(w.gid), rdev: ns(w.rdev),
    size: ns(w.size), blksize: ns(w.blksize), blocks: ns(w.blocks),
    atimeMs: at / 1_000_000n, mtimeMs: mt / 1_000_000n, ctimeMs: ct / 1_000_000n, birthtimeMs: bt / 1_000_000n,
    atimeNs: at, mtimeNs: mt, ctimeNs: ct, birthtimeNs: bt,
    atime: date(at), mtime: date(mt), ctime: date(ct), birthtime: date(bt),
    isFile: type(0o100000), isDirectory: type(0o040000), isSymbolicLink: type(0o120000), isFIFO: type(0o010000),
    isCharacterDevice: type(0o020000), isBlockDevice: type(0o060000), isSocket: type(0o140000),
  } as unknown as BigIntStats
}

export interface WireStatfs {
  bsize: string
  blocks: string
  bfree: string
  bavail: string
  files: string
  ffree: string
}

export function statfsToWire(s: StatsFs): WireStatfs {
  return {bsize: String(s.bsize), blocks: String(s.blocks), bfree: String(s.bfree), bavail: String(s.bavail), files: String(s.files), ffree: String(s.ffree)}
}

export function statfsFromWire(w: WireStatfs): StatsFs {
  return {type: 0, bsize: Number(w.bsize), blocks: Number(w.blocks), bfree: Number(w.bfree), bavail: Number(w.bavail), files: Number(w.files), ffree: Number(w.ffree)} as StatsFs
}

/** An errno-style error, as the FUSE adapter maps it. */
export function errnoError(code: string, message: string): NodeJS.ErrnoException {
  const e = new Error(message) as NodeJS.ErrnoException
  e.code = code
  return e
}

// ---- hand-encoded data messages --------------------------------------------
// Writes and read replies carry up to MAX_CHUNK bytes; encoding them by hand
// lets the data be copied once (into a pooled buffer, behind room for the
// header) instead of three times. The bytes are ordinary protobuf, as the
// .proto file describes (fields may come in any order).

/** Room kept before the data in a pooled buffer for the message header. */
export const HEADROOM = 64

function varint(out: number[], v: number): void {
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80)
    v = Math.floor(v / 0x80)
  }

  out.push(v)
}

/**
 * A WriteRequest whose data already sits in `buf` at HEADROOM..HEADROOM+len:
 * writes the header just before it and returns the whole message.
 */
export function encodeWriteInPlace(buf: Buffer, len: number, fh: number, offset: number, caller: WireCaller): Buffer {
  const c: number[] = [0x08]
  varint(c, caller.uid >>> 0)
  c.push(0x10)
  varint(c, caller.gid >>> 0)
  c.push(0x18)
  varint(c, caller.pid >>> 0)
  const h: number[] = [0x10]
  varint(h, fh)
  h.push(0x20)
  varint(h, offset)
  h.push(0x2a)
  varint(h, c.length)
  h.push(...c, 0x1a)
  varint(h, len)
  const start = HEADROOM - h.length
  if (start < 0) throw new Error('write header too long')
  buf.set(h, start)
  return buf.subarray(start, HEADROOM + len)
}

/** A DataReply for `n` bytes read into `buf` at HEADROOM. */
export function encodeDataInPlace(buf: Buffer, n: number): Buffer {
  const h: number[] = [0x12]
  varint(h, n)
  const start = HEADROOM - h.length
  buf.set(h, start)
  return buf.subarray(start, HEADROOM + n)
}
