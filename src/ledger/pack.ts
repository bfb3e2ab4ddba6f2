/**
 * A list of payloads as one buffer: (length (u32 BE) ‖ payload) × n. The
 * embedded ledger stores a block's payloads this way; a MultiChain stream item
 * carries a batch this way behind its own header.
 */

/** Packs payloads, after `headroom` bytes left for the caller's header. */
export function packPayloads(payloads: readonly Uint8Array[], headroom = 0): Buffer {
  let total = headroom
  for (const p of payloads) total += 4 + p.length
  const out = Buffer.allocUnsafe(total)
  let at = headroom
  for (const p of payloads) {
    out.writeUInt32BE(p.length, at)
    out.set(p, at + 4)
    at += 4 + p.length
  }

  return out
}

/** Splits packed payloads; null if the bytes do not hold exactly n well-formed entries. */
export function unpackPayloads(buf: Buffer, n: number): Buffer[] | null {
  const out: Buffer[] = []
  let at = 0
  while (at < buf.length) {
    if (at + 4 > buf.length) return null
    const len = buf.readUInt32BE(at)
    if (at + 4 + len > buf.length) return null
    out.push(buf.subarray(at + 4, at + 4 + len))
    at += 4 + len
  }

  return out.length === n ? out : null
}
