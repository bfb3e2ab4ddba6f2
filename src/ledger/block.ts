/**
 * The PacioFS block format shared by the embedded driver and the in-memory
 * test ledger: pure functions to seal (hash + sign) and to check a block.
 *
 * header = canonical({t:'paciofs/block', v:1, ledger, epoch, prev, time, merkle, producer, ntx})
 * hash   = sha256(header)            (the signature is not part of the hash)
 * sig    = Ed25519(producer, header)
 * merkle = RFC 6962 root over the raw 32-byte txids; txid = sha256(payload)
 * The ledger id is inside the header, so a block cannot be moved to another
 * volume's ledger without breaking its hash and signature.
 */
import {canonical} from '../crypto/canonical.js'
import {isHash, sha256, sha256Hex, ZERO_HASH} from '../crypto/hash.js'
import {merkleRoot} from '../crypto/merkle.js'
import {sign, verify, type Identity} from '../crypto/sign.js'
import type {Block, Tx} from './types.js'

export const BLOCK_FORMAT_VERSION = 1

export interface HeaderFields {
  epoch: number
  prevHash: string
  time: number
  merkleRoot: string
  producer: string
  ntx: number
}

export function headerBytes(ledgerId: string, h: HeaderFields): Buffer {
  return canonical({
    t: 'paciofs/block',
    v: BLOCK_FORMAT_VERSION,
    ledger: ledgerId,
    epoch: h.epoch,
    prev: h.prevHash,
    time: h.time,
    merkle: h.merkleRoot,
    producer: h.producer,
    ntx: h.ntx,
  })
}

/** txid of a payload for the embedded format: sha256(payload), hex. */
export function txidOf(payload: Uint8Array): string {
  return sha256Hex(payload)
}

/** Merkle root over hex txids. */
export function txMerkleRoot(txids: readonly string[]): string {
  return merkleRoot(txids.map((t) => Buffer.from(t, 'hex'))).toString('hex')
}

/** Build, hash and sign a block. `txs` must already carry their txids. */
export function sealBlock(
  ledgerId: string,
  producer: Identity,
  b: {epoch: number; prevHash: string; time: number; txs: Tx[]; merkleRoot?: string},
): Block {
  const header = sealHeader(ledgerId, producer, {
    epoch: b.epoch,
    prevHash: b.prevHash,
    time: b.time,
    ntx: b.txs.length,
    merkleRoot: b.merkleRoot ?? txMerkleRoot(b.txs.map((t) => t.txid)),
  })
  return {...header, txs: b.txs}
}

/** Hash and sign a block's header, given its transactions' count and Merkle root (the writer keeps the txs apart). */
export function sealHeader(
  ledgerId: string,
  producer: Identity,
  b: {epoch: number; prevHash: string; time: number; ntx: number; merkleRoot: string},
): Omit<Block, 'txs'> {
  const fields: HeaderFields = {epoch: b.epoch, prevHash: b.prevHash, time: b.time, merkleRoot: b.merkleRoot, producer: producer.pid, ntx: b.ntx}
  const header = headerBytes(ledgerId, fields)
  return {
    epoch: fields.epoch,
    prevHash: fields.prevHash,
    time: fields.time,
    merkleRoot: fields.merkleRoot,
    producer: fields.producer,
    signature: sign(producer, header).toString('hex'),
    hash: sha256(header).toString('hex'),
  }
}

export function genesisBlock(ledgerId: string, producer: Identity, time: number): Block {
  return sealBlock(ledgerId, producer, {epoch: 0, prevHash: ZERO_HASH, time, txs: []})
}

export type BlockProblemKind = 'shape' | 'txid' | 'merkle' | 'hash' | 'signature' | 'link' | 'genesis'

export interface BlockProblem {
  kind: BlockProblemKind
  epoch: number
  detail: string
}

/**
 * Check one block on its own (shape, txids, Merkle root, hash, signature) and,
 * when `prev` is given, its link to the previous block. Returns null when the
 * block is sound, otherwise the first problem found.
 * `checkTxids: false` skips re-hashing payloads (for drivers whose txids are
 * not sha256(payload)).
 */
export function verifyBlock(
  ledgerId: string,
  b: Block,
  prev?: {epoch: number; hash: string} | null,
  opts: {checkTxids?: boolean} = {},
): BlockProblem | null {
  const epoch = typeof b?.epoch === 'number' ? b.epoch : -1
  const problem = (kind: BlockProblemKind, detail: string): BlockProblem => ({kind, epoch, detail})
  if (!Number.isSafeInteger(b.epoch) || b.epoch < 0) return problem('shape', `bad epoch ${String(b.epoch)}`)
  if (!isHash(b.prevHash) || !isHash(b.merkleRoot) || !isHash(b.hash) || !isHash(b.producer)) return problem('shape', 'a hash field is not 64 hex digits')
  if (typeof b.signature !== 'string' || !/^[0-9a-f]{128}$/.test(b.signature)) return problem('shape', 'signature is not 128 hex digits')
  if (!Number.isSafeInteger(b.time) || b.time < 0) return problem('shape', `bad time ${String(b.time)}`)
  if (!Array.isArray(b.txs)) return problem('shape', 'txs is not an array')
  if (b.epoch === 0 && (b.txs.length !== 0 || b.prevHash !== ZERO_HASH)) return problem('genesis', 'genesis must have no transactions and a zero prevHash')
  if (opts.checkTxids !== false) {
    for (let i = 0; i < b.txs.length; i++) {
      const tx = b.txs[i]
      if (!Buffer.isBuffer(tx.payload) || txidOf(tx.payload) !== tx.txid) return problem('txid', `tx ${i}: txid ${String(tx.txid)} is not sha256 of its payload`)
    }
  }
  const root = txMerkleRoot(b.txs.map((t) => t.txid))
  if (root !== b.merkleRoot) return problem('merkle', `merkle root is ${b.merkleRoot}, transactions give ${root}`)
  const header = headerBytes(ledgerId, {...b, ntx: b.txs.length})
  const hash = sha256(header).toString('hex')
  if (hash !== b.hash) return problem('hash', `hash is ${b.hash}, header gives ${hash}`)
  if (!verify(b.producer, header, b.signature)) return problem('signature', `signature by ${b.producer} does not verify`)
  if (prev) {
    if (b.epoch !== prev.epoch + 1) return problem('link', `epoch ${b.epoch} follows epoch ${prev.epoch}`)
    if (b.prevHash !== prev.hash) return problem('link', `prevHash ${b.prevHash} does not match hash ${prev.hash} of epoch ${prev.epoch}`)
  }
  return null
}
