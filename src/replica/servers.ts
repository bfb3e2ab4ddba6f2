/**
 * The servers of a volume, as its ledger says: server-join / server-accept /
 * server-kick / server-leave records replayed in ledger order (pure state
 * machine; the records come from the journal of whoever holds the volume).
 *
 * JOIN: a server asks, with its own signature (statements.ts). VOTEACCEPT:
 * an accepted server (the primary, which produces the ledger, is one) or a
 * member votes for it; `votes` distinct voters accept it (default 1, as in
 * the prototype). VOTEKICK: the same number of votes remove an accepted or
 * pending server. LEAVE: the server itself goes. A kicked or departed server
 * may join again (a new JOIN starts a new vote).
 */
import type {FsRecord} from '../volume/types.js'
import {verifyJoin} from './statements.js'

export type ServerState = 'pending' | 'accepted' | 'kicked' | 'left'

export interface ServerEntry {
  key: string
  state: ServerState
  address: string
  fingerprint: string
  accepts: Set<string>
  kicks: Set<string>
  reason?: string
}

export const SERVER_OPS = new Set(['server-join', 'server-accept', 'server-kick', 'server-leave'])

export class ServerSet {
  private readonly entries = new Map<string, ServerEntry>()
  private readonly listeners: Array<(e: ServerEntry) => void> = []

  /**
   * @param primary the ledger's producer (an accepted server by construction)
   * @param volumeId checks the join statements
   */
  constructor(readonly primary: string, private readonly volumeId: string, private readonly votes = 1) {}

  onChange(fn: (e: ServerEntry) => void): void {
    this.listeners.push(fn)
  }

  get(key: string): ServerEntry | undefined {
    return this.entries.get(key)
  }

  isAccepted(key: string): boolean {
    return key === this.primary || this.entries.get(key)?.state === 'accepted'
  }

  /** Every server but the primary, sorted by key. */
  list(): ServerEntry[] {
    return [...this.entries.values()].sort((a, b) => (a.key < b.key ? -1 : 1))
  }

  accepted(): ServerEntry[] {
    return this.list().filter(e => e.state === 'accepted')
  }

  /** Can `voter` vote? Accepted servers and (for manual accepts) the volume's members. */
  mayVote(voter: string, isMember: (k: string) => boolean): boolean {
    return this.isAccepted(voter) || isMember(voter)
  }

  /** Applies one record in ledger order; returns true if it was a server record. */
  apply(r: FsRecord): boolean {
    if (!SERVER_OPS.has(r.op) || typeof r.member !== 'string') return false
    const key = r.member
    const by = r.who?.member
    let e = this.entries.get(key)
    switch (r.op) {
      case 'server-join': {
        const statement = {volumeId: this.volumeId, server: key, address: r.address ?? '', fingerprint: r.fingerprint ?? '', at: r.signedAt ?? 0}
        if (!r.proof || !verifyJoin(statement, r.proof)) return true // an unproven join counts for nothing
        if (e?.state === 'accepted' || e?.state === 'pending') {
          e.address = statement.address
          e.fingerprint = statement.fingerprint
          break
        }

        e = {key, state: 'pending', address: statement.address, fingerprint: statement.fingerprint, accepts: new Set(), kicks: new Set()}
        this.entries.set(key, e)
        break
      }

      case 'server-accept':
        if (!e || e.state !== 'pending' || !by) return true
        e.accepts.add(by)
        if (e.accepts.size >= this.votes) e.state = 'accepted'
        break
      case 'server-kick':
        if (!e || (e.state !== 'pending' && e.state !== 'accepted') || !by) return true
        e.kicks.add(by)
        if (e.kicks.size >= this.votes) {
          e.state = 'kicked'
          e.reason = r.reason
        }

        break
      case 'server-leave':
        if (!e || by !== key) return true
        e.state = 'left'
        break
    }

    for (const fn of this.listeners) fn(e!)
    return true
  }
}
