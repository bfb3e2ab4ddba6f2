/**
 * Envelopes on the wire: canonical encoding of {v, pid, seq, prev, payloads}
 * signed by pid; the envelope's hash (what the next envelope's `prev` names)
 * is sha256 of its full wire bytes, signature included.
 */
import {canonical, decodeCanonical} from '../crypto/canonical.js'
import {ZERO_HASH, sha256Hex} from '../crypto/hash.js'
import {sign, verify, type Identity} from '../crypto/sign.js'
import type {Envelope} from './types.js'

export const GENESIS_PREV = ZERO_HASH

function unsigned(e: Omit<Envelope, 'sig'>) {
  return canonical({v: e.v, pid: e.pid, seq: e.seq, prev: e.prev, payloads: e.payloads})
}

export function sealEnvelope(identity: Identity, seq: number, prev: string, payloads: Buffer[]): {envelope: Envelope; wire: Buffer; hash: string} {
  const body = {v: 1 as const, pid: identity.pid, seq, prev, payloads}
  const sig = sign(identity, unsigned(body)).toString('hex')
  const envelope: Envelope = {...body, sig}
  const wire = encodeEnvelope(envelope)
  return {envelope, wire, hash: sha256Hex(wire)}
}

export function encodeEnvelope(e: Envelope): Buffer {
  return canonical({v: e.v, pid: e.pid, seq: e.seq, prev: e.prev, payloads: e.payloads, sig: e.sig})
}

export class MalformedEnvelope extends Error {}

/** Parses wire bytes; throws MalformedEnvelope for anything that is not exactly a canonical v1 envelope. */
export function decodeEnvelope(wire: Uint8Array): Envelope {
  let v: unknown
  try {
    v = decodeCanonical(wire)
  } catch (error) {
    throw new MalformedEnvelope(`not canonical: ${(error as Error).message}`)
  }

  const o = v as Record<string, unknown>
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new MalformedEnvelope('not an object')
  const keys = Object.keys(o).sort().join(',')
  if (keys !== 'payloads,pid,prev,seq,sig,v') throw new MalformedEnvelope(`unexpected fields ${keys}`)
  if (o.v !== 1) throw new MalformedEnvelope(`unknown version ${String(o.v)}`)
  if (typeof o.pid !== 'string' || !/^[0-9a-f]{64}$/.test(o.pid)) throw new MalformedEnvelope('bad pid')
  if (typeof o.seq !== 'number' || !Number.isSafeInteger(o.seq) || o.seq < 1) throw new MalformedEnvelope('bad seq')
  if (typeof o.prev !== 'string' || !/^[0-9a-f]{64}$/.test(o.prev)) throw new MalformedEnvelope('bad prev')
  if (typeof o.sig !== 'string' || !/^[0-9a-f]{128}$/.test(o.sig)) throw new MalformedEnvelope('bad sig')
  if (!Array.isArray(o.payloads) || !o.payloads.every(p => p instanceof Uint8Array)) throw new MalformedEnvelope('bad payloads')
  return {v: 1, pid: o.pid, seq: o.seq, prev: o.prev, sig: o.sig, payloads: (o.payloads as Uint8Array[]).map(p => Buffer.from(p))}
}

export function signatureValid(e: Envelope): boolean {
  try {
    return verify(e.pid, unsigned(e), e.sig)
  } catch {
    return false
  }
}

export function envelopeHash(wire: Uint8Array): string {
  return sha256Hex(wire)
}
