/**
 * Signed checkpoints and the consistency check an auditor runs between a
 * checkpoint it kept and the ledger as it is now. Pure: no I/O.
 *
 * checkpoint statement = canonical({t:'paciofs/checkpoint', v:1, ledger, epoch, head, time, producer})
 * signed by the producer of the head block.
 */
import type {KeyObject} from 'node:crypto'
import {canonical} from '../crypto/canonical.js'
import {isHash} from '../crypto/hash.js'
import {pidOf, sign, verify, type Identity} from '../crypto/sign.js'
import {verifyBlock, type BlockProblemKind} from './block.js'
import type {Block, Checkpoint} from './types.js'

export function checkpointBytes(cp: Omit<Checkpoint, 'signature'>): Buffer {
  return canonical({t: 'paciofs/checkpoint', v: 1, ledger: cp.ledgerId, epoch: cp.epoch, head: cp.headHash, time: cp.time, producer: cp.producer})
}

/** Sign a checkpoint for a block (done by the ledger when it commits the block). */
export function signCheckpoint(ledgerId: string, head: {epoch: number; hash: string; time: number}, producer: Identity): Checkpoint {
  const body = {ledgerId, epoch: head.epoch, headHash: head.hash, time: head.time, producer: producer.pid}
  return {...body, signature: sign(producer, checkpointBytes(body)).toString('hex')}
}

/**
 * True iff cp is well-formed, names `pubkey` as its producer, and carries
 * that key's valid signature. `pubkey` is a pid (hex) or a KeyObject.
 */
export function verifyCheckpoint(cp: Checkpoint, pubkey: string | KeyObject): boolean {
  try {
    const pid = typeof pubkey === 'string' ? pubkey : pidOf(pubkey)
    if (cp.producer !== pid) return false
    if (typeof cp.ledgerId !== 'string' || !Number.isSafeInteger(cp.epoch) || cp.epoch < 0) return false
    if (!isHash(cp.headHash) || !Number.isSafeInteger(cp.time)) return false
    return verify(pubkey, checkpointBytes(cp), cp.signature)
  } catch {
    return false
  }
}

export type ConsistencyProblemKind =
  | BlockProblemKind // a block in the range is itself broken
  | 'checkpoint-signature' // the old checkpoint does not verify under its own producer
  | 'checkpoint-mismatch' // the block at the checkpoint's epoch has another hash: history was rewritten
  | 'truncated' // the ledger ends before the checkpoint's epoch: history was cut
  | 'gap' // blocks are missing or out of order in what was given
  | 'new-checkpoint-mismatch' // the given newer checkpoint is not the end of the chain

export type ConsistencyResult =
  | {ok: true; headEpoch: number; headHash: string}
  | {ok: false; kind: ConsistencyProblemKind; epoch: number; detail: string; expected?: string; found?: string}

/**
 * Is the ledger given as `blocks` a continuation of the history `oldCp`
 * committed to? `blocks` must run in order without gaps, starting at or
 * before oldCp.epoch (typically `ledger.read(oldCp.epoch)`); every block is
 * verified (hash, Merkle root, signature) and linked to the one before it,
 * the block at oldCp.epoch must have hash oldCp.headHash, and, if `newCp`
 * is given, the last block must be the one it names. Detects a rewritten
 * history even when the attacker also re-signed every block with a new key.
 */
export async function checkConsistency(
  oldCp: Checkpoint,
  blocks: Iterable<Block> | AsyncIterable<Block>,
  opts: {newCp?: Checkpoint; checkTxids?: boolean} = {},
): Promise<ConsistencyResult> {
  if (!verifyCheckpoint(oldCp, oldCp.producer)) {
    return {ok: false, kind: 'checkpoint-signature', epoch: oldCp.epoch, detail: 'old checkpoint signature does not verify'}
  }
  let prev: {epoch: number; hash: string} | null = null
  let sawCheckpoint = false
  for await (const b of blocks as AsyncIterable<Block>) {
    if (prev === null && b.epoch > oldCp.epoch) {
      return {ok: false, kind: 'gap', epoch: b.epoch, detail: `blocks start at epoch ${b.epoch}, after the checkpoint's epoch ${oldCp.epoch}`}
    }
    if (prev !== null && b.epoch !== prev.epoch + 1) {
      return {ok: false, kind: 'gap', epoch: b.epoch, detail: `epoch ${b.epoch} follows epoch ${prev.epoch}`}
    }
    const problem = verifyBlock(oldCp.ledgerId, b, prev, {checkTxids: opts.checkTxids})
    if (problem) return {ok: false, ...problem}
    if (b.epoch === oldCp.epoch) {
      if (b.hash !== oldCp.headHash) {
        return {ok: false, kind: 'checkpoint-mismatch', epoch: b.epoch, detail: `block at the checkpoint's epoch has another hash`, expected: oldCp.headHash, found: b.hash}
      }
      sawCheckpoint = true
    }
    prev = {epoch: b.epoch, hash: b.hash}
  }
  if (!sawCheckpoint || prev === null) {
    return {ok: false, kind: 'truncated', epoch: oldCp.epoch, detail: `ledger ends at epoch ${prev?.epoch ?? 'none'}, before the checkpoint's epoch ${oldCp.epoch}`}
  }
  const newCp = opts.newCp
  if (newCp && (newCp.epoch !== prev.epoch || newCp.headHash !== prev.hash || newCp.ledgerId !== oldCp.ledgerId)) {
    return {ok: false, kind: 'new-checkpoint-mismatch', epoch: newCp.epoch, detail: `chain ends at epoch ${prev.epoch}`, expected: newCp.headHash, found: prev.hash}
  }
  return {ok: true, headEpoch: prev.epoch, headHash: prev.hash}
}
