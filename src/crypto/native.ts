/**
 * The batch hashing of native/sys.c (OpenSSL's SHA-256 inside node), for the
 * embedded ledger's hot path: one call per block instead of one crypto.hash
 * per payload and per Merkle node. The same addon volume/sys.ts loads (Node
 * loads it once); typed here so that crypto/ needs nothing from volume/.
 */
import {createRequire} from 'node:module'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

interface NativeHashing {
  /** out[32i..32i+32) = SHA-256(parts[i]) */
  sha256Each(parts: readonly Uint8Array[], out: Buffer): void
  /** RFC 6962 Merkle tree hash of n >= 1 leaves of 32 bytes given back to back */
  merkleRoot32(leaves: Buffer): Buffer
}

const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(import.meta.url)
export const native: NativeHashing = require(path.join(here, '..', '..', 'native', 'build', 'Release', 'paciofs_sys.node')) as NativeHashing

/** SHA-256 of every part, as one buffer of 32 bytes per part. */
export function sha256All(parts: readonly Uint8Array[]): Buffer {
  const out = Buffer.allocUnsafe(parts.length * 32)
  native.sha256Each(parts, out)
  return out
}
