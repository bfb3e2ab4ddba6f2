/**
 * What a joining server signs (pure). The statement names the volume, the
 * server's key, where it serves and its TLS certificate, so the server-join
 * record on the ledger proves that the key's holder asked for exactly that,
 * and peers can later pin the server's certificate from the ledger.
 */
import {canonical} from '../crypto/canonical.js'
import {sign, verify, type Identity} from '../crypto/sign.js'

export interface JoinStatement {
  volumeId: string
  server: string
  address: string
  fingerprint: string
  at: number
}

export function joinStatementBytes(s: JoinStatement): Buffer {
  return canonical({t: 'paciofs/server-join', v: 1, volume: s.volumeId, server: s.server, address: s.address, fingerprint: s.fingerprint, at: s.at})
}

export function signJoin(identity: Identity, s: Omit<JoinStatement, 'server'>): {statement: JoinStatement; proof: string} {
  const statement = {...s, server: identity.pid}
  return {statement, proof: sign(identity, joinStatementBytes(statement)).toString('hex')}
}

export function verifyJoin(s: JoinStatement, proof: string): boolean {
  try {
    return verify(s.server, joinStatementBytes(s), proof)
  } catch {
    return false
  }
}
