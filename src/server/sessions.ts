/**
 * Sessions: who is on which connection, for which volume, with which open
 * files. A session is created by a verified handshake on one connection and
 * lives as long as that connection's Session stream; its token is refused on
 * any other connection, and once the session has ended. Nonces are single-use
 * and expire.
 */
import {randomBytes} from 'node:crypto'
import type {ServedVolume as Served} from './served.js'

export interface Session {
  readonly token: string
  readonly peer: string
  readonly member: string
  readonly served: Served
  /** open files: server handle -> the path the server knows it by (kept current across renames) */
  readonly handles: Map<number, string>
  /** opens under way: they count against the limit before they have a handle */
  opening: number
  ended: boolean
  end(reason: string): void
}

const NONCE_TTL_MS = 30_000
const MAX_NONCES = 10_000

export class Sessions {
  private readonly byToken = new Map<string, Session>()
  private readonly nonces = new Map<string, number>()

  /** A fresh nonce for a handshake. */
  nonce(): Buffer {
    const now = Date.now()
    if (this.nonces.size >= MAX_NONCES) {
      for (const [k, exp] of this.nonces) if (exp < now || this.nonces.size >= MAX_NONCES) this.nonces.delete(k)
    }

    const n = randomBytes(32)
    this.nonces.set(n.toString('hex'), now + NONCE_TTL_MS)
    return n
  }

  /** Uses up a nonce; false if it was never issued, already used or expired. */
  takeNonce(n: Buffer): boolean {
    const k = n.toString('hex')
    const exp = this.nonces.get(k)
    this.nonces.delete(k)
    return exp !== undefined && exp >= Date.now()
  }

  add(s: Omit<Session, 'token' | 'handles' | 'ended' | 'opening'>): Session {
    const session: Session = {...s, token: randomBytes(32).toString('base64url'), handles: new Map(), opening: 0, ended: false}
    this.byToken.set(session.token, session)
    return session
  }

  get(token: string): Session | undefined {
    return this.byToken.get(token)
  }

  remove(s: Session): void {
    this.byToken.delete(s.token)
  }

  all(): Session[] {
    return [...this.byToken.values()]
  }

  /** Every session's handle paths follow a rename (as the volume's own do). */
  renamed(served: Served, from: string, to: string): void {
    for (const s of this.byToken.values()) {
      if (s.served !== served) continue
      for (const [fh, p] of s.handles) {
        if (p === from) s.handles.set(fh, to)
        else if (p.startsWith(from + '/')) s.handles.set(fh, to + p.slice(from.length))
      }
    }
  }
}
