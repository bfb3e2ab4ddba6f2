/**
 * The receiving side's rules, pure and stateful per sender: every envelope
 * must decode, carry a valid signature, have exactly the next sequence number
 * and name the hash of the sender's previous envelope. Whatever breaks a rule
 * becomes a Violation and is never delivered.
 */
import {GENESIS_PREV, MalformedEnvelope, decodeEnvelope, envelopeHash, signatureValid} from './seal.js'
import type {Envelope, Violation} from './types.js'

export interface SenderState {
  seq: number
  hash: string
}

export type CheckResult = {ok: true; envelope: Envelope; hash: string} | {ok: false; violation: Violation}

export class EnvelopeChecker {
  private readonly senders = new Map<string, SenderState>()
  private readonly seen = new Set<string>()

  /** `trustFirst`: the first envelope seen of each sender sets its baseline (for reading from mid-ledger). */
  constructor(private readonly trustFirst = false) {}

  state(pid: string): SenderState | undefined {
    return this.senders.get(pid)
  }

  check(wire: Uint8Array, epoch: number, txid: string): CheckResult {
    const bad = (kind: Violation['kind'], detail: string, e?: Envelope): CheckResult =>
      ({ok: false, violation: {kind, pid: e?.pid, seq: e?.seq, epoch, txid, detail}})
    let e: Envelope
    try {
      e = decodeEnvelope(wire)
    } catch (error) {
      return bad('malformed', error instanceof MalformedEnvelope ? error.message : String(error))
    }

    if (!signatureValid(e)) return bad('signature-invalid', `signature of ${e.pid.slice(0, 16)}… seq ${e.seq} does not verify`, e)
    const hash = envelopeHash(wire)
    if (this.seen.has(hash)) return bad('replayed', `envelope seq ${e.seq} appears again`, e)
    const last = this.senders.get(e.pid)
    if (last === undefined && this.trustFirst) {
      this.accept(e, hash)
      return {ok: true, envelope: e, hash}
    }

    const expectSeq = (last?.seq ?? 0) + 1
    const expectPrev = last?.hash ?? GENESIS_PREV
    if (e.seq < expectSeq) return bad(e.seq === last?.seq ? 'replayed' : 'reordered', `seq ${e.seq} after seq ${last?.seq ?? 0} was delivered`, e)
    if (e.seq > expectSeq) {
      this.accept(e, hash) // re-synchronise so that one gap is reported once
      return bad('sequence-gap', `seq ${e.seq} but ${expectSeq} expected: ${e.seq - expectSeq} envelope(s) missing`, e)
    }

    if (e.prev !== expectPrev) {
      this.accept(e, hash)
      return bad('prev-mismatch', `prev ${e.prev.slice(0, 16)}… does not name the previous envelope ${expectPrev.slice(0, 16)}…`, e)
    }

    this.accept(e, hash)
    return {ok: true, envelope: e, hash}
  }

  private accept(e: Envelope, hash: string): void {
    this.senders.set(e.pid, {seq: e.seq, hash})
    this.seen.add(hash)
  }
}
