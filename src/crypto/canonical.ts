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

/**
 * Where a value sits, as a stack of keys and indices (one array per call,
 * pushed and popped): the text `$.a[2].b` is only built for an error. An
 * auditor encodes and parses 100,000s of records, and a path string per
 * value was most of the garbage.
 */
type Path = Array<string | number>

function failAt(path: Path, message: string): never {
  let at = '$'
  for (const seg of path) at += typeof seg === 'number' ? `[${seg}]` : `.${seg}`
  fail(`${at}: ${message}`)
}

const isWellFormed = (s: string): boolean => (s as unknown as {isWellFormed(): boolean}).isWellFormed()

function encodeString(s: string, path: Path): string {
  if (!isWellFormed(s)) failAt(path, 'string holds a lone surrogate')
  return JSON.stringify(s)
}

function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v)
  return proto === Object.prototype || proto === null
}

/** Appends the canonical text of v, at `path` (its length is the depth), to out. */
function encodeValue(v: unknown, path: Path, out: string[]): void {
  if (path.length > MAX_DEPTH) failAt(path, `nested deeper than ${MAX_DEPTH}`)
  switch (typeof v) {
    case 'boolean':
      out.push(v ? 'true' : 'false')
      return
    case 'number':
      if (!Number.isSafeInteger(v)) failAt(path, `${v} is not a safe integer`)
      if (Object.is(v, -0)) failAt(path, '-0 is not allowed')
      out.push(String(v))
      return
    case 'bigint':
      out.push(`{"$big":"${v.toString(10)}"}`)
      return
    case 'string':
      out.push(encodeString(v, path))
      return
    case 'object':
      break
    default:
      failAt(path, `cannot encode a ${typeof v}`)
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
      path.push(i)
      if (!(i in v) || v[i] === undefined) failAt(path, 'undefined array element')
      if (i > 0) out.push(',')
      encodeValue(v[i], path, out)
      path.pop()
    }
    out.push(']')
    return
  }
  if (!isPlainObject(v)) failAt(path, `cannot encode an instance of ${v.constructor?.name ?? 'unknown'}`)
  const obj = v as Record<string, unknown>
  const keys = Object.keys(obj).sort()
  out.push('{')
  let first = true
  for (const k of keys) {
    if (k.charCodeAt(0) === 36 /* $ */) failAt(path, `key ${JSON.stringify(k)} starts with the reserved $`)
    if (k === '__proto__') failAt(path, 'key "__proto__" is not allowed')
    const x = obj[k]
    if (x === undefined) continue
    if (!first) out.push(',')
    first = false
    out.push(encodeString(k, path), ':')
    path.push(k)
    encodeValue(x, path, out)
    path.pop()
  }
  if (Object.getOwnPropertySymbols(obj).length > 0) failAt(path, 'symbol keys are not allowed')
  out.push('}')
}

/** The canonical text of a value (what `canonical` returns as UTF-8 bytes). */
export function canonicalString(v: Canonical): string {
  const out: string[] = []
  encodeValue(v, [], out)
  return out.join('')
}

/** The canonical bytes of a value. Throws CryptoError('ENONCANONICAL') for values outside the domain. */
export function canonical(v: Canonical): Buffer {
  return Buffer.from(canonicalString(v), 'utf8')
}

/**
 * JSON.parse's result as a canonical value: the tagged forms become Buffers
 * and bigints, in place (JSON.parse's objects are plain and own their keys:
 * no copy per object).
 */
function revive(v: unknown, path: Path): Canonical {
  if (path.length > MAX_DEPTH) failAt(path, `nested deeper than ${MAX_DEPTH}`)
  if (v === null || typeof v !== 'object') return v as Canonical
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const x = v[i]
      if (x !== null && typeof x === 'object') {
        path.push(i)
        v[i] = revive(x, path)
        path.pop()
      } else if (path.length >= MAX_DEPTH) deeperThanMax(path, i) // a primitive needs no call, only its depth checked
    }
    return v as Canonical[]
  }
  const obj = v as Record<string, unknown>
  const keys = Object.keys(obj)
  if (keys.length === 1 && keys[0] === '$b64') {
    const s = obj.$b64
    if (typeof s !== 'string' || !B64.test(s)) failAt(path, 'bad $b64 value')
    return Buffer.from(s, 'base64')
  }
  if (keys.length === 1 && keys[0] === '$big') {
    const s = obj.$big
    if (typeof s !== 'string' || !BIGINT.test(s)) failAt(path, 'bad $big value')
    return BigInt(s)
  }
  for (const k of keys) {
    // encode() rejects $-keys and __proto__; checking here keeps revive from
    // ever assigning to a prototype.
    if (k.charCodeAt(0) === 36 /* $ */ || k === '__proto__') failAt(path, `key ${JSON.stringify(k)} is not allowed`)
    const x = obj[k]
    if (x !== null && typeof x === 'object') {
      path.push(k)
      obj[k] = revive(x, path)
      path.pop()
    } else if (path.length >= MAX_DEPTH) deeperThanMax(path, k)
  }
  return obj as Canonical
}

function deeperThanMax(path: Path, child: string | number): never {
  path.push(child)
  failAt(path, `nested deeper than ${MAX_DEPTH}`)
}

/** JSON text to a canonical value. */
function reviveParsed(text: string): Canonical {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (error) {
    throw new CryptoError('ENONCANONICAL', `not JSON: ${(error as Error).message}`)
  }
  return revive(parsed, [])
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

/** More than MAX_DEPTH opening brackets: the text may nest deeper than revive allows. */
function mayNestTooDeep(text: string): boolean {
  let n = 0
  for (let i = text.indexOf('{'); i >= 0 && n <= MAX_DEPTH; i = text.indexOf('{', i + 1)) n++
  for (let i = text.indexOf('['); i >= 0 && n <= MAX_DEPTH; i = text.indexOf('[', i + 1)) n++
  return n > MAX_DEPTH
}

/**
 * parseCommitted for the text of such bytes (read as UTF-8). JSON.parse's
 * result needs revive's walk only when the text can hold what revive
 * changes or rejects: a tagged form or a `$` key (`"$`), `__proto__`, an
 * escape (which could spell either), or nesting deeper than MAX_DEPTH.
 * Records have none of these, so most are parsed without the walk; the
 * result and the errors are those of parseCommitted.
 */
export function parseCommittedText(text: string): Canonical {
  if (text.includes('"$') || text.includes('__proto__') || text.includes('\\u') || mayNestTooDeep(text)) return reviveParsed(text)
  try {
    return JSON.parse(text) as Canonical
  } catch (error) {
    throw new CryptoError('ENONCANONICAL', `not JSON: ${(error as Error).message}`)
  }
}
