/**
 * The per-sender checker behind delivery (pure, no I/O; the auditor reuses it).
 *
 * Feed it the ledger's blocks in order. For every transaction it decides:
 *  - not a decodable envelope                         -> 'malformed'
 *  - signature does not verify under the claimed pid  -> 'signature-invalid'
 *  (below, `last` = the sender's last accepted seq and envelope id; 0 / zeros at first)
 *  - seq = last+1 and prev = last id                  -> deliver
 *  - seq = last+1 and prev != last id                 -> 'prev-mismatch'
 *  - seq > last+1                                     -> 'sequence-gap' (envelopes last+1..seq-1 missing)
 *  - seq <= last and this seq was seen                -> 'replayed' (same seq again, identical or not)
 *  - seq <= last and this seq was never seen          -> 'reordered' (it arrived after later ones)
 * A violating envelope is never delivered. After a gap or a prev mismatch the
 * checker re-anchors on the (authentically signed) envelope, so later
 * envelopes of that sender that link to it are delivered and one drop is
 * reported once rather than for every later envelope. Signature failures and
 * malformed transactions leave the sender's state untouched.
 * "Seen" is remembered for the last `recentWindow` seqs per sender (default
 * 1024); an older seq showing up again is reported as 'reordered'.
 */
import {sha256Hex, ZERO_HASH} from '../crypto/hash.js'
import {PacioError} from '../errors.js'
import type {Block} from '../ledger/types.js'
import {verify} from '../crypto/sign.js'
import {decodeEnvelopeWithBody} from './envelope.js'
import type {Delivery, Envelope, Violation} from './types.js'

export interface SenderState {
  seq: number
  id: string
  /** [seq, envelope id] of recently accepted or anchored envelopes, oldest first */
  recent: Array<[number, string]>
}

/** A checker's whole state, JSON-serialisable: save it to resume delivery at `nextEpoch`. */
export interface CheckerState {
  v: 1
  nextEpoch: number
  senders: Record<string, SenderState>
}

export type Verdict = {ok: true; envelope: Envelope; id: string} | {ok: false; violation: Violation}

interface Sender {
  seq: number
  id: string
  recent: Map<number, string>
}

export class FifoChecker {
  private readonly senders = new Map<string, Sender>()
  private next: number
  private readonly window: number

  constructor(state?: CheckerState, opts: {recentWindow?: number} = {}) {
    this.window = opts.recentWindow ?? 1024
    this.next = state?.nextEpoch ?? 0
    if (state) {
      if (state.v !== 1 || typeof state.senders !== 'object') throw new PacioError('EINPUT', 'not a broadcast checker state')
      for (const [pid, s] of Object.entries(state.senders)) this.senders.set(pid, {seq: s.seq, id: s.id, recent: new Map(s.recent)})
    }
  }

  /** The epoch the next block must have (at least). */
  get nextEpoch(): number {
    return this.next
  }

  /** Judge one transaction and update the sender's state. */
  check(raw: Buffer, epoch: number, txid: string): Verdict {
    const decoded = decodeEnvelopeWithBody(raw) // the body comes with it: the signature covers it and the id is its hash
    if (!decoded.ok) return {ok: false, violation: {kind: 'malformed', epoch, txid, detail: decoded.reason}}
    const {envelope: e, body} = decoded
    const v = (kind: Violation['kind'], detail: string): Verdict => ({ok: false, violation: {kind, pid: e.pid, seq: e.seq, epoch, txid, detail}})
    if (!verify(e.pid, body, e.sig)) return v('signature-invalid', `signature does not verify under pid ${e.pid}`)
    const id = sha256Hex(body)
    let s = this.senders.get(e.pid)
    if (!s) {
      s = {seq: 0, id: ZERO_HASH, recent: new Map()}
      this.senders.set(e.pid, s)
    }
    if (e.seq === s.seq + 1) {
      const expected = s.id
      this.accept(s, e.seq, id)
      if (e.prev === expected) return {ok: true, envelope: e, id}
      return v('prev-mismatch', `prev ${e.prev} does not name the sender's envelope seq ${e.seq - 1} (${expected})`)
    }
    if (e.seq > s.seq + 1) {
      const missing = e.seq - s.seq - 1
      const detail = `expected seq ${s.seq + 1}, got ${e.seq}: ${missing} envelope${missing === 1 ? '' : 's'} missing`
      this.accept(s, e.seq, id)
      return v('sequence-gap', detail)
    }
    const seen = s.recent.get(e.seq)
    if (seen !== undefined) return v('replayed', seen === id ? `seq ${e.seq} again (identical envelope)` : `seq ${e.seq} again with different content`)
    return v('reordered', `seq ${e.seq} arrived after seq ${s.seq}`)
  }

  private accept(s: Sender, seq: number, id: string): void {
    s.seq = seq
    s.id = id
    s.recent.set(seq, id)
    if (s.recent.size > this.window) s.recent.delete(s.recent.keys().next().value as number)
  }

  /**
   * Judge every transaction of a block, calling back in ledger order. Blocks
   * must come in increasing epoch order starting at nextEpoch.
   */
  checkBlock(block: Block, onDelivery: (d: Delivery) => void, onViolation: (v: Violation) => void): void {
    this.checkBlockEnvelopes(block, (e, txid) => {
      for (let i = 0; i < e.payloads.length; i++) onDelivery({pid: e.pid, epoch: block.epoch, txid, seq: e.seq, index: i, payload: e.payloads[i]})
    }, onViolation)
  }

  /** checkBlock by envelope: each delivered envelope once, with the txid it came in (no object per payload). */
  checkBlockEnvelopes(block: Block, onEnvelope: (e: Envelope, txid: string) => void, onViolation: (v: Violation) => void): void {
    if (block.epoch < this.next) throw new PacioError('EINPUT', `block ${block.epoch} fed again (checker is at epoch ${this.next})`)
    for (const tx of block.txs) {
      const verdict = this.check(tx.payload, block.epoch, tx.txid)
      if (!verdict.ok) {
        onViolation(verdict.violation)
        continue
      }
      onEnvelope(verdict.envelope, tx.txid)
    }
    this.next = block.epoch + 1
  }

  /** Last accepted seq per sender. */
  lastSeq(pid: string): number {
    return this.senders.get(pid)?.seq ?? 0
  }

  snapshot(): CheckerState {
    const senders: Record<string, SenderState> = {}
    for (const [pid, s] of this.senders) senders[pid] = {seq: s.seq, id: s.id, recent: [...s.recent]}
    return {v: 1, nextEpoch: this.next, senders}
  }
}
