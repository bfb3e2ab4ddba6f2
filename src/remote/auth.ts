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
/** The data channel's (protocol 3) transcript has a label of its own: a signature for one is useless for the other. */
const DATA_LABEL = Buffer.from('paciofs/v1 data')

export function transcript(nonce: Buffer, certFingerprint: Buffer, volume: string, member: string, label = LABEL): Buffer {
  const parts = [label, nonce, certFingerprint, Buffer.from(volume, 'utf8'), Buffer.from(member, 'utf8')]
  const out: Buffer[] = []
  for (const p of parts) {
    const len = Buffer.alloc(4)
    len.writeUInt32BE(p.length)
    out.push(len, p)
  }

  return Buffer.concat(out)
}

/**
 * What a client signs to attach a data channel to its session: the same
 * fields as the session's, the nonce being the data connection's own.
 */
export function dataTranscript(nonce: Buffer, certFingerprint: Buffer, volume: string, member: string): Buffer {
  return transcript(nonce, certFingerprint, volume, member, DATA_LABEL)
}

/** sha256 of a certificate's DER bytes: what the client pins and both sides sign over. */
export function certFingerprint(der: Buffer): Buffer {
  return createHash('sha256').update(der).digest()
}

/** The fingerprint as people compare it: SHA256:hex pairs. */
export function showFingerprint(fp: Buffer): string {
  return `SHA256:${fp.toString('hex')}`
}
