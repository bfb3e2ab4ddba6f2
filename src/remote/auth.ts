/**
 * The session handshake's signed transcript, shared by client and server.
 * The client signs, with its member key:
 *
 *   "paciofs/v1 session" ‖ nonce ‖ sha256(server certificate, DER) ‖ volume ‖ member
 *
 * each field length-prefixed (u32 big-endian). The nonce is the server's,
 * fresh and single-use, so a signature cannot be replayed; the certificate
 * fingerprint is the one the client pinned, so a signature made towards
 * another server (a man in the middle) is useless at the real one; the
 * volume and member name what the session may do.
 */
import {createHash} from 'node:crypto'

const LABEL = Buffer.from('paciofs/v1 session')

export function transcript(nonce: Buffer, certFingerprint: Buffer, volume: string, member: string): Buffer {
  const parts = [LABEL, nonce, certFingerprint, Buffer.from(volume, 'utf8'), Buffer.from(member, 'utf8')]
  const out: Buffer[] = []
  for (const p of parts) {
    const len = Buffer.alloc(4)
    len.writeUInt32BE(p.length)
    out.push(len, p)
  }

  return Buffer.concat(out)
}

/** sha256 of a certificate's DER bytes: what the client pins and both sides sign over. */
export function certFingerprint(der: Buffer): Buffer {
  return createHash('sha256').update(der).digest()
}

/** The fingerprint as people compare it: SHA256:hex pairs. */
export function showFingerprint(fp: Buffer): string {
  return `SHA256:${fp.toString('hex')}`
}
