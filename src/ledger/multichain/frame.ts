/**
 * The data of one PacioFS stream item: a batch of ledger payloads.
 *   frame = "PFS1" ‖ count (u32 BE) ‖ (length (u32 BE) ‖ payload) × count
 * Published as hex so MultiChain 1.0 and 2.0 both accept it. The item's key
 * is sha256(frame): a batch re-published after a node restart or a
 * reorganisation carries the same key, which is how copies are recognised.
 */
import {sha256Hex} from '../../crypto/hash.js'

const MAGIC = Buffer.from('PFS1')

export function encodeFrame(payloads: readonly Buffer[]): Buffer {
  let size = 8
  for (const p of payloads) size += 4 + p.length
  const out = Buffer.allocUnsafe(size)
  MAGIC.copy(out, 0)
  out.writeUInt32BE(payloads.length, 4)
  let at = 8
  for (const p of payloads) {
    out.writeUInt32BE(p.length, at)
    p.copy(out, at + 4)
    at += 4 + p.length
  }
  return out
}

/** The payloads of a frame, or null when the bytes are not a well-formed frame. */
export function decodeFrame(data: Buffer): Buffer[] | null {
  if (data.length < 8 || !data.subarray(0, 4).equals(MAGIC)) return null
  const n = data.readUInt32BE(4)
  const out: Buffer[] = []
  let at = 8
  for (let i = 0; i < n; i++) {
    if (at + 4 > data.length) return null
    const len = data.readUInt32BE(at)
    if (at + 4 + len > data.length) return null
    out.push(data.subarray(at + 4, at + 4 + len))
    at += 4 + len
  }
  return at === data.length ? out : null
}

export function frameKey(frame: Buffer): string {
  return sha256Hex(frame)
}

/** Bytes a payload adds to a frame. */
export const frameCost = (payload: Buffer) => payload.length + 4
export const FRAME_OVERHEAD = 8
