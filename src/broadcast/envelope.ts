/**
 * Envelope encoding, signing and strict decoding (pure).
 *
 * signed body = canonical({t:'paciofs/envelope', v:1, pid, seq, prev, payloads})
 * id          = sha256(signed body), hex: what the sender's next envelope names as `prev`
 * sig         = Ed25519(pid, signed body)
 * on the ledger: canonical({v, pid, seq, prev, payloads, sig}) (payloads as $b64)
 * The `t` tag separates envelope signatures from block and checkpoint
 * signatures made with the same key.
 */
import {canonical, decodeCanonical} from '../crypto/canonical.js'
import {isHash, sha256Hex} from '../crypto/hash.js'
import {decodeEnvelopeFast} from './envelope-fast.js'
import {sign, verify, type Identity} from '../crypto/sign.js'
import type {Envelope} from './types.js'

export const ENVELOPE_VERSION = 1

export function envelopeBody(e: Omit<Envelope, 'sig'>): Buffer {
  return canonical({t: 'paciofs/envelope', v: e.v, pid: e.pid, seq: e.seq, prev: e.prev, payloads: e.payloads})
}

export function envelopeId(e: Omit<Envelope, 'sig'>): string {
  return sha256Hex(envelopeBody(e))
}

export function signEnvelope(identity: Identity, e: {seq: number; prev: string; payloads: Buffer[]}): Envelope {
  const body = {v: ENVELOPE_VERSION as 1, pid: identity.pid, seq: e.seq, prev: e.prev, payloads: e.payloads}
  return {...body, sig: sign(identity, envelopeBody(body)).toString('hex')}
}

export function verifyEnvelope(e: Envelope): boolean {
  return verify(e.pid, envelopeBody(e), e.sig)
}

export function encodeEnvelope(e: Envelope): Buffer {
  return canonical({v: e.v, pid: e.pid, seq: e.seq, prev: e.prev, payloads: e.payloads, sig: e.sig})
}

const KEYS = ['payloads', 'pid', 'prev', 'seq', 'sig', 'v']

/** Decode bytes from the ledger; returns a reason string instead of throwing for anything malformed. */
export function decodeEnvelope(bytes: Uint8Array): {ok: true; envelope: Envelope} | {ok: false; reason: string} {
  const fast = decodeEnvelopeFast(bytes)
  if (fast) return {ok: true, envelope: fast.envelope}
  return decodeEnvelopeStrict(bytes)
}

/** decodeEnvelope with the signed body too (what the signature covers and the id hashes). */
export function decodeEnvelopeWithBody(bytes: Uint8Array): {ok: true; envelope: Envelope; body: Buffer} | {ok: false; reason: string} {
  const fast = decodeEnvelopeFast(bytes)
  if (fast) return {ok: true, ...fast}
  const d = decodeEnvelopeStrict(bytes)
  return d.ok ? {ok: true, envelope: d.envelope, body: envelopeBody(d.envelope)} : d
}

/** The strict decoder alone (decodeCanonical and the shape checks): every reason a malformed envelope gets comes from here. */
export function decodeEnvelopeStrict(bytes: Uint8Array): {ok: true; envelope: Envelope} | {ok: false; reason: string} {
  let v: unknown
  try {
    v = decodeCanonical(bytes)
  } catch (error) {
    return {ok: false, reason: (error as Error).message}
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) return {ok: false, reason: 'not an object'}
  const o = v as Record<string, unknown>
  const keys = Object.keys(o).sort()
  if (keys.length !== KEYS.length || keys.some((k, i) => k !== KEYS[i])) return {ok: false, reason: `fields are ${keys.join(',')}`}
  if (o.v !== ENVELOPE_VERSION) return {ok: false, reason: `version ${String(o.v)}`}
  if (!isHash(o.pid)) return {ok: false, reason: 'pid is not 64 hex digits'}
  if (typeof o.seq !== 'number' || !Number.isSafeInteger(o.seq) || o.seq < 1) return {ok: false, reason: 'seq is not a positive integer'}
  if (!isHash(o.prev)) return {ok: false, reason: 'prev is not 64 hex digits'}
  if (typeof o.sig !== 'string' || !/^[0-9a-f]{128}$/.test(o.sig)) return {ok: false, reason: 'sig is not 128 hex digits'}
  if (!Array.isArray(o.payloads) || o.payloads.length === 0 || !o.payloads.every((p) => Buffer.isBuffer(p))) {
    return {ok: false, reason: 'payloads is not a non-empty list of bytes'}
  }
  return {ok: true, envelope: {v: 1, pid: o.pid, seq: o.seq, prev: o.prev, payloads: o.payloads as Buffer[], sig: o.sig}}
}
