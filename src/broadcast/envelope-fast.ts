/**
 * A fast path for decoding envelopes as they sit on the ledger: a scanner
 * that accepts only the exact canonical text an honest sender writes,
 *
 *   {"payloads":[{"$b64":"<b64>"},...],"pid":"<64 hex>","prev":"<64 hex>","seq":<n>,"sig":"<128 hex>","v":1}
 *
 * (keys sorted, no whitespace, lowercase hex, canonical base64, seq a safe
 * integer >= 1 without leading zeros) and returns undefined for anything
 * else, which then takes the strict path (decodeCanonical: parse, re-encode,
 * compare; every reason reported there). What it accepts, the strict path
 * accepts with the same values, so it changes no verdict; it saves the
 * parse, a Buffer per payload decoded from its own string, and the two
 * re-encodings (the canonical check and the signed body), which were most
 * of an auditor's ledger pass (200,000 payloads for 100,000 files).
 *
 * The signed body, canonical({t, v, pid, seq, prev, payloads}), is the same
 * text with `"sig":"…",` replaced by `"t":"paciofs/envelope",`: the payloads
 * decode into one buffer and are views of it.
 */
import type {Envelope} from './types.js'

const OPEN = Buffer.from('{"payloads":[')
const ITEM = Buffer.from('{"$b64":"')
const PID = Buffer.from('"pid":"')
const PREV = Buffer.from('","prev":"')
const SEQ = Buffer.from('","seq":')
const SIG = Buffer.from(',"sig":"')
const END = Buffer.from('","v":1}')
const BODY_TAIL = Buffer.from(',"t":"paciofs/envelope","v":1}')

/** base64 digit value of each byte, or -1 */
const B64 = new Int8Array(256).fill(-1)
for (let i = 0; i < 64; i++) B64['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.charCodeAt(i)] = i
const QUOTE = 0x22
const EQ = 0x3D

function at(b: Uint8Array, pos: number, lit: Uint8Array): boolean {
  if (pos + lit.length > b.length) return false
  for (let i = 0; i < lit.length; i++) if (b[pos + i] !== lit[i]) return false
  return true
}

function isHex(b: Uint8Array, pos: number, n: number): boolean {
  if (pos + n > b.length) return false
  for (let i = pos; i < pos + n; i++) {
    const c = b[i]
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false
  }
  return true
}

/**
 * The length in bytes of the canonical base64 text at b[from..to), or -1:
 * a multiple of 4 characters, padding only at the end, and the bits the
 * padding leaves unused zero (so that re-encoding gives the same text).
 */
function b64Length(b: Uint8Array, from: number, to: number): number {
  const n = to - from
  if (n % 4 !== 0) return -1
  if (n === 0) return 0
  const pad = b[to - 1] === EQ ? (b[to - 2] === EQ ? 2 : 1) : 0
  for (let i = from; i < to - pad; i++) if (B64[b[i]] < 0) return -1
  const last = B64[b[to - 1 - pad]]
  if (pad === 1 && (last & 0x3) !== 0) return -1
  if (pad === 2 && (last & 0xF) !== 0) return -1
  return (n / 4) * 3 - pad
}

function b64Decode(b: Uint8Array, from: number, to: number, out: Buffer, o: number): void {
  for (let i = from; i < to; i += 4) {
    const a = B64[b[i]]
    const c = B64[b[i + 1]]
    const d = b[i + 2] === EQ ? 0 : B64[b[i + 2]]
    const e = b[i + 3] === EQ ? 0 : B64[b[i + 3]]
    const v = (a << 18) | (c << 12) | (d << 6) | e
    out[o++] = v >> 16
    if (b[i + 2] !== EQ) out[o++] = (v >> 8) & 0xFF
    if (b[i + 3] !== EQ) out[o++] = v & 0xFF
  }
}

/** The envelope and its signed body, or undefined if the bytes are not exactly an honest sender's canonical text. */
export function decodeEnvelopeFast(bytes: Uint8Array): {envelope: Envelope; body: Buffer} | undefined {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (!at(b, 0, OPEN)) return undefined
  let pos = OPEN.length
  const spans: number[] = [] // from, to, length of each payload's base64
  let total = 0
  for (;;) {
    if (!at(b, pos, ITEM)) return undefined
    const from = pos + ITEM.length
    const to = b.indexOf(QUOTE, from)
    if (to < 0) return undefined
    const len = b64Length(b, from, to)
    if (len < 0) return undefined
    spans.push(from, to, len)
    total += len
    pos = to + 1
    if (b[pos] !== 0x7D /* } */) return undefined
    pos++
    if (b[pos] === 0x2C /* , */) {
      pos++
      continue
    }

    if (b[pos] !== 0x5D /* ] */ || b[pos + 1] !== 0x2C) return undefined
    pos += 2
    break
  }

  if (!at(b, pos, PID) || !isHex(b, pos + PID.length, 64)) return undefined
  const pidAt = pos + PID.length
  pos = pidAt + 64
  if (!at(b, pos, PREV) || !isHex(b, pos + PREV.length, 64)) return undefined
  const prevAt = pos + PREV.length
  pos = prevAt + 64
  if (!at(b, pos, SEQ)) return undefined
  pos += SEQ.length
  const seqAt = pos
  if (b[pos] === 0x30 /* leading zero, or 0 */) return undefined
  let seq = 0
  while (pos < b.length && b[pos] >= 0x30 && b[pos] <= 0x39 && pos - seqAt < 16) seq = seq * 10 + (b[pos++] - 0x30)
  if (pos === seqAt || !Number.isSafeInteger(seq)) return undefined
  const sigFrom = pos
  if (!at(b, pos, SIG) || !isHex(b, pos + SIG.length, 128)) return undefined
  const sigAt = pos + SIG.length
  pos = sigAt + 128
  if (!at(b, pos, END) || pos + END.length !== b.length) return undefined

  const decoded = Buffer.allocUnsafe(total)
  const payloads: Buffer[] = new Array(spans.length / 3)
  for (let i = 0, o = 0; i < spans.length; i += 3) {
    b64Decode(b, spans[i], spans[i + 1], decoded, o)
    payloads[i / 3] = decoded.subarray(o, o + spans[i + 2])
    o += spans[i + 2]
  }

  const text = b
  const envelope: Envelope = {v: 1, pid: text.toString('latin1', pidAt, pidAt + 64), seq, prev: text.toString('latin1', prevAt, prevAt + 64), payloads,
    sig: text.toString('latin1', sigAt, sigAt + 128)}
  return {envelope, body: Buffer.concat([text.subarray(0, sigFrom), BODY_TAIL])}
}
