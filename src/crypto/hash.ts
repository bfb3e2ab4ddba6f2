import {createHash, hash} from 'node:crypto'

/** 64 hex zeros: the "no previous hash" marker used by blocks and envelopes. */
export const ZERO_HASH = '0'.repeat(64)

const HEX64 = /^[0-9a-f]{64}$/

/** SHA-256 of the concatenation of the given parts (strings are UTF-8). */
export function sha256(...parts: Array<Uint8Array | string>): Buffer {
  // one-shot crypto.hash is markedly cheaper than a Hash object per call
  if (parts.length === 1 && typeof parts[0] !== 'string') return hash('sha256', parts[0], 'buffer')
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return h.digest()
}

/** SHA-256 as lowercase hex. */
export function sha256Hex(...parts: Array<Uint8Array | string>): string {
  return sha256(...parts).toString('hex')
}

/** True for a lowercase 64-digit hex string (a SHA-256 digest or an Ed25519 pid). */
export function isHash(s: unknown): s is string {
  return typeof s === 'string' && HEX64.test(s)
}
