/**
 * Reliable FIFO-order tamper-proof broadcast over a Ledger.
 * pid = sender's Ed25519 public key (hex). Each envelope carries the sender's
 * sequence number, the hash of its previous envelope, a batch of payloads and
 * a signature over all of that.
 */
export interface Envelope {
  v: 1
  pid: string
  seq: number // 1, 2, 3, ... per sender
  prev: string // hex hash of the sender's previous envelope; 64 zeros for seq 1
  payloads: Buffer[]
  sig: string // hex Ed25519 over the canonical encoding of the fields above
}

/** One payload delivered, with where it sits on the ledger. */
export interface Delivery {
  pid: string
  epoch: number
  txid: string
  seq: number // the envelope's sequence number
  index: number // position of the payload inside its envelope
  payload: Buffer
}

/**
 * Receives the outcome of payloads queued with Broadcast.broadcastJournaled,
 * by the tag the caller gave each: no promise per payload.
 */
export interface DeliverySink {
  delivered(tag: number, d: Delivery): void
  /** the payload is not known to be committed (the broadcast closed first): the caller re-sends it after reopening */
  failed(tag: number, error: Error): void
}

export type ViolationKind =
  | 'malformed' // not a decodable envelope
  | 'signature-invalid' // forged or altered
  | 'sequence-gap' // dropped envelope(s) before this one
  | 'reordered' // seq lower than already delivered
  | 'replayed' // same envelope (or seq) again
  | 'prev-mismatch' // prev hash does not link to the sender's previous envelope

export interface Violation {
  kind: ViolationKind
  pid?: string
  seq?: number
  epoch: number
  txid: string
  detail: string
}
