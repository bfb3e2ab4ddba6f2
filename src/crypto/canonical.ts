/**
 * Canonical encoding of JSON-like values: one value has exactly one byte
 * string, so it can be hashed and signed.
 *
 * The encoding is UTF-8 JSON text without whitespace:
 * - `null`, `true`, `false`;
 * - numbers: safe integers only (|n| <= 2^53-1), written in decimal; floats,
 *   NaN, ±Infinity and -0 are rejected;
 * - strings: as ECMAScript's JSON.stringify quotes them (escapes `"` `\`,
 *   \b \t \n \f \r, other controls below U+0020 as \u00xx; everything else
 *   literal UTF-8); strings holding a lone surrogate are rejected;
 * - arrays: `[a,b]`; holes and `undefined` elements are rejected;
 * - plain objects: `{"k":v}` with keys sorted by UTF-16 code units (the
 *   default JS sort); keys whose value is `undefined` are omitted; keys
 *   starting with `$` and the key `__proto__` are rejected (`$` is reserved
 *   for the two tagged forms below);
 * - Buffer / Uint8Array: `{"$b64":"<RFC 4648 base64 with padding>"}`;
 * - bigint: `{"$big":"<decimal, optional leading ->"}`.
 * Anything else (functions, symbols, Dates, Maps, class instances) is
 * rejected, as is nesting deeper than MAX_DEPTH.
 *
 * `decodeCanonical` parses such bytes back and rejects any input that is not
 * exactly the canonical encoding of what it decodes to (extra whitespace,
 * unsorted or duplicate keys, `1.0`, non-canonical base64, ...).
 */
import {CryptoError} from './errors.js'

export type Canonical =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | readonly Canonical[]
  | {readonly [key: string]: Canonical | undefined}

export const MAX_DEPTH = 64

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
const BIGINT = /^-?(?:0|[1-9][0-9]*)$/

function fail(message: string): never {
  throw new CryptoError('ENONCANONICAL', message)
}

const isWellFormed = (s: string): boolean => (s as unknown as {isWellFormed(): boolean}).isWellFormed()

function encodeString(s: string, at: string): string {
  if (!isWellFormed(s)) fail(`${at}: string holds a lone surrogate`)
  return JSON.stringify(s)
}

function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v)
  return proto === Object.prototype || proto === null
}

function encodeValue(v: unknown, at: string, depth: number, out: string[]): void {
  if (depth > MAX_DEPTH) fail(`${at}: nested deeper than ${MAX_DEPTH}`)
  switch (typeof v) {
    case 'boolean':
      out.push(v ? 'true' : 'false')
      return
    case 'number':
      if (!Number.isSafeInteger(v)) fail(`${at}: ${v} is not a safe integer`)
      if (Object.is(v, -0)) fail(`${at}: -0 is not allowed`)
      out.push(String(v))
      return
    case 'bigint':
      out.push(`{"$big":"${v.toString(10)}"}`)
      return
    case 'string':
      out.push(encodeString(v, at))
      return
    case 'object':
      break
    default:
      fail(`${at}: cannot encode a ${typeof v}`)
  }
  if (v === null) {
    out.push('null')
    return
  }
  if (v instanceof Uint8Array) {
    out.push(`{"$b64":"${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')}"}`)
    return
  }
  if (Array.isArray(v)) {
    out.push('[')
    for (let i = 0; i < v.length; i++) {
      if (!(i in v) || v[i] === undefined) fail(`${at}[${i}]: undefined array element`)
      if (i > 0) out.push(',')
      encodeValue(v[i], `${at}[${i}]`, depth + 1, out)
    }
    out.push(']')
    return
  }
  if (!isPlainObject(v)) fail(`${at}: cannot encode an instance of ${v.constructor?.name ?? 'unknown'}`)
  const obj = v as Record<string, unknown>
  const keys = Object.keys(obj).sort()
  out.push('{')
  let first = true
  for (const k of keys) {
    if (k.startsWith('$')) fail(`${at}: key ${JSON.stringify(k)} starts with the reserved $`)
    if (k === '__proto__') fail(`${at}: key "__proto__" is not allowed`)
    const x = obj[k]
    if (x === undefined) continue
    if (!first) out.push(',')
    first = false
    out.push(encodeString(k, at), ':')
    encodeValue(x, `${at}.${k}`, depth + 1, out)
  }
  if (Object.getOwnPropertySymbols(obj).length > 0) fail(`${at}: symbol keys are not allowed`)
  out.push('}')
}

/** Thrown by the fast paths below at the first thing they do not accept: the slow path then says what and where. */
const RETRY = new Error('retry with paths')

/**
 * encodeValue without the `at` path (an auditor encodes 100,000s of values:
 * a path string per array element and key is most of the garbage). Accepts
 * exactly what encodeValue accepts and writes the same text; anything else
 * throws RETRY and canonicalString runs encodeValue for the error message.
 */
function encodeFast(v: unknown, depth: number, out: string[]): void {
  if (depth > MAX_DEPTH) throw RETRY
  switch (typeof v) {
    case 'boolean':
      out.push(v ? 'true' : 'false')
      return
    case 'number':
      if (!Number.isSafeInteger(v) || Object.is(v, -0)) throw RETRY
      out.push(String(v))
      return
    case 'bigint':
      out.push(`{"$big":"${v.toString(10)}"}`)
      return
    case 'string':
      if (!isWellFormed(v)) throw RETRY
      out.push(JSON.stringify(v))
      return
    case 'object':
      break
    default:
      throw RETRY
  }
  if (v === null) {
    out.push('null')
    return
  }
  if (v instanceof Uint8Array) {
    out.push(`{"$b64":"${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')}"}`)
    return
  }
  if (Array.isArray(v)) {
    out.push('[')
    for (let i = 0; i < v.length; i++) {
      if (!(i in v) || v[i] === undefined) throw RETRY
      if (i > 0) out.push(',')
      encodeFast(v[i], depth + 1, out)
    }
    out.push(']')
    return
  }
  if (!isPlainObject(v)) throw RETRY
  const obj = v as Record<string, unknown>
  const keys = Object.keys(obj).sort()
  out.push('{')
  let first = true
  for (const k of keys) {
    if (k.charCodeAt(0) === 36 /* $ */ || k === '__proto__' || !isWellFormed(k)) throw RETRY
    const x = obj[k]
    if (x === undefined) continue
    if (!first) out.push(',')
    first = false
    out.push(JSON.stringify(k), ':')
    encodeFast(x, depth + 1, out)
  }
  if (Object.getOwnPropertySymbols(obj).length > 0) throw RETRY
  out.push('}')
}

/** The canonical text of a value (what `canonical` returns as UTF-8 bytes). */
export function canonicalString(v: Canonical): string {
  let out: string[] = []
  try {
    encodeFast(v, 0, out)
  } catch (error) {
    if (error !== RETRY) throw error
    out = []
    encodeValue(v, '$', 0, out) // throws, with the path of what is not allowed
  }
  return out.join('')
}

/** The canonical bytes of a value. Throws CryptoError('ENONCANONICAL') for values outside the domain. */
export function canonical(v: Canonical): Buffer {
  return Buffer.from(canonicalString(v), 'utf8')
}

function revive(v: unknown, at: string, depth: number): Canonical {
  if (depth > MAX_DEPTH) fail(`${at}: nested deeper than ${MAX_DEPTH}`)
  if (v === null || typeof v !== 'object') return v as Canonical
  if (Array.isArray(v)) return v.map((x, i) => revive(x, `${at}[${i}]`, depth + 1))
  const obj = v as Record<string, unknown>
  const keys = Object.keys(obj)
  if (keys.length === 1 && keys[0] === '$b64') {
    const s = obj.$b64
    if (typeof s !== 'string' || !B64.test(s)) fail(`${at}: bad $b64 value`)
    return Buffer.from(s, 'base64')
  }
  if (keys.length === 1 && keys[0] === '$big') {
    const s = obj.$big
    if (typeof s !== 'string' || !BIGINT.test(s)) fail(`${at}: bad $big value`)
    return BigInt(s)
  }
  const res: Record<string, Canonical> = {}
  for (const k of keys) {
    // encode() rejects $-keys and __proto__; checking here keeps revive from
    // ever assigning to a prototype.
    if (k.startsWith('$') || k === '__proto__') fail(`${at}: key ${JSON.stringify(k)} is not allowed`)
    res[k] = revive(obj[k], `${at}.${k}`, depth + 1)
  }
  return res
}

/** revive without the `at` path; throws RETRY where revive throws (the caller re-runs revive for the message). */
function reviveFast(v: unknown, depth: number): Canonical {
  if (depth > MAX_DEPTH) throw RETRY
  if (v === null || typeof v !== 'object') return v as Canonical
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const x = v[i]
      if (x !== null && typeof x === 'object') v[i] = reviveFast(x, depth + 1)
      else if (depth + 1 > MAX_DEPTH) throw RETRY
    }
    return v as Canonical[]
  }
  const obj = v as Record<string, unknown>
  const keys = Object.keys(obj)
  if (keys.length === 1 && keys[0] === '$b64') {
    const s = obj.$b64
    if (typeof s !== 'string' || !B64.test(s)) throw RETRY
    return Buffer.from(s, 'base64')
  }
  if (keys.length === 1 && keys[0] === '$big') {
    const s = obj.$big
    if (typeof s !== 'string' || !BIGINT.test(s)) throw RETRY
    return BigInt(s)
  }
  // JSON.parse's objects are plain and own their keys: revised in place (no copy per object)
  for (const k of keys) {
    if (k.charCodeAt(0) === 36 /* $ */ || k === '__proto__') throw RETRY
    const x = obj[k]
    if (x !== null && typeof x === 'object') obj[k] = reviveFast(x, depth + 1)
    else if (depth + 1 > MAX_DEPTH) throw RETRY
  }
  return obj as Canonical
}

/** JSON text to a canonical value: the fast path, or revive's error with its path. */
function reviveParsed(text: string): Canonical {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (error) {
    throw new CryptoError('ENONCANONICAL', `not JSON: ${(error as Error).message}`)
  }
  try {
    return reviveFast(parsed, 0)
  } catch (error) {
    if (error !== RETRY) throw error
    return revive(JSON.parse(text), '$', 0) // a fresh copy: the fast path may have revised part of `parsed`
  }
}

/**
 * Parse canonical bytes. Throws CryptoError('ENONCANONICAL') unless `bytes`
 * is exactly `canonical(result)`.
 */
export function decodeCanonical(bytes: Uint8Array): Canonical {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const value = reviveParsed(buf.toString('utf8'))
  // Re-encoding catches everything JSON.parse forgives: whitespace, key order,
  // duplicate keys, 1.0, 1e3, escapes written differently, invalid UTF-8.
  const again = canonical(value)
  if (!again.equals(buf)) fail('bytes are not in canonical form')
  return value
}

/**
 * Parse bytes whose integrity is already established (they hash, with their
 * salt, to a value on the ledger, so they are exactly the bytes their author
 * committed): JSON and the tagged forms are checked as in decodeCanonical,
 * but the value is not re-encoded to compare. That re-encoding is most of
 * decodeCanonical's cost (an auditor replays 100,000s of records); the
 * matching hash already proves the bytes were not changed since they were
 * committed, and the recorder only ever commits canonical bytes.
 */
export function parseCommitted(bytes: Uint8Array): Canonical {
  return reviveParsed(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'))
}
