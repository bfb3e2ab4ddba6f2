/**
 * The data of one PacioFS stream item: a batch of ledger payloads.
 *   frame = "PFS1" ‖ count (u32 BE) ‖ (length (u32 BE) ‖ payload) × count
 * Published as hex so MultiChain 1.0 and 2.0 both accept it. The item's key
 * is sha256(frame): a batch re-published after a node restart or a
 * reorganisation carries the same key, which is how copies are recognised.
 */
import {sha256Hex} from '../../crypto/hash.js'
import {packPayloads, unpackPayloads} from '../pack.js'

const MAGIC = Buffer.from('PFS1')

export function encodeFrame(payloads: readonly Buffer[]): Buffer {
  const out = packPayloads(payloads, FRAME_OVERHEAD)
  MAGIC.copy(out, 0)
  out.writeUInt32BE(payloads.length, 4)
  return out
}

/** The payloads of a frame, or null when the bytes are not a well-formed frame. */
export function decodeFrame(data: Buffer): Buffer[] | null {
  if (data.length < FRAME_OVERHEAD || !data.subarray(0, 4).equals(MAGIC)) return null
  return unpackPayloads(data.subarray(FRAME_OVERHEAD), data.readUInt32BE(4))
}

export function frameKey(frame: Buffer): string {
  return sha256Hex(frame)
}

/** Bytes a payload adds to a frame. */
export const frameCost = (payload: Buffer) => payload.length + 4
export const FRAME_OVERHEAD = 8
