/**
 * Merkle tree hash as in RFC 6962 §2.1 (Certificate Transparency):
 *   MTH({})      = SHA-256()
 *   MTH({d0})    = SHA-256(0x00 || d0)
 *   MTH(D[0:n])  = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))
 * where k is the largest power of two smaller than n. The 0x00 / 0x01
 * prefixes keep a leaf from ever being read as an inner node.
 */
import {createHash, hash} from 'node:crypto'
import {native} from './native.js'

const LEAF = Buffer.from([0])
const NODE = Buffer.from([1])

export function leafHash(data: Uint8Array): Buffer {
  return createHash('sha256').update(LEAF).update(data).digest()
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return createHash('sha256').update(NODE).update(left).update(right).digest()
}

/**
 * The Merkle tree hash of the leaves. Computed bottom-up level by level
 * (an odd last node is promoted unchanged), which yields the same tree as the
 * recursive split at the largest power of two.
 */
export function merkleRoot(leaves: readonly Uint8Array[]): Buffer {
  if (leaves.length === 0) return createHash('sha256').digest()
  // a block's txids: the whole tree in one native call
  if (leaves.length > 1 && leaves.every(d => d.length === 32)) return native.merkleRoot32(Buffer.concat(leaves))
  return merkleRootJs(leaves)
}

/** merkleRoot of n leaves of 32 bytes given back to back in one buffer (a block's raw txids). */
export function merkleRoot32(leaves: Buffer, n: number): Buffer {
  if (leaves.length !== n * 32) throw new RangeError(`merkleRoot32: ${leaves.length} bytes for ${n} leaves of 32`)
  if (n === 0) return createHash('sha256').digest()
  if (n === 1) return merkleRootJs([leaves])
  return native.merkleRoot32(leaves)
}

/** merkleRoot in JavaScript (any leaf lengths; the reference the native one is tested against). */
export function merkleRootJs(leaves: readonly Uint8Array[]): Buffer {
  if (leaves.length === 0) return createHash('sha256').digest()
  // Hot path (a block's txids): hash prefix+data from one scratch buffer.
  const leafScratch = Buffer.alloc(33)
  let level = leaves.map((d) => {
    if (d.length !== 32) return leafHash(d)
    leafScratch.set(d, 1)
    return hash('sha256', leafScratch, 'buffer')
  })
  const nodeScratch = Buffer.alloc(65)
  nodeScratch[0] = 1
  while (level.length > 1) {
    const next: Buffer[] = []
    for (let i = 0; i + 1 < level.length; i += 2) {
      nodeScratch.set(level[i], 1)
      nodeScratch.set(level[i + 1], 33)
      next.push(hash('sha256', nodeScratch, 'buffer'))
    }
    if (level.length % 2 === 1) next.push(level[level.length - 1])
    level = next
  }
  return level[0]
}

/** merkleRoot over hex leaves (e.g. txids), as hex; each leaf is hashed as its raw bytes. */
export function merkleRootHex(leavesHex: readonly string[]): string {
  return merkleRoot(leavesHex.map((h) => Buffer.from(h, 'hex'))).toString('hex')
}
