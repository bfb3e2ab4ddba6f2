/**
 * The Ledger port: an ordered, append-only sequence of signed, hash-linked
 * blocks for one volume. Drivers: embedded (SQLite) and multichain.
 * Nothing here knows about envelopes or file systems: payloads are opaque.
 */

import type {ConsistencyResult} from './checkpoint.js'

/**
 * A transaction as stored on the ledger. txid = sha256(payload) hex for the
 * embedded driver; `<MultiChain txid>:<index>` for the multichain driver
 * (several payloads share one MultiChain transaction).
 */
export interface Tx {
  txid: string
  payload: Buffer
}

/**
 * merkleRoot, producer and signature are the embedded driver's own (PacioFS
 * signs its blocks); a MultiChain block carries MultiChain's merkle root, the
 * miner's address as producer and no PacioFS signature ('').
 */
export interface Block {
  epoch: number // height; genesis is 0 and holds no transactions
  prevHash: string // hex sha256 of the previous block's header ('' * 64 zeros for genesis)
  time: number // ms since the Unix epoch
  merkleRoot: string // hex, RFC 6962 style over the txids
  producer: string // hex Ed25519 public key of the block's signer
  signature: string // hex Ed25519 signature over the header
  hash: string // hex sha256 of the canonical header
  txs: Tx[]
}

/** The head of a ledger, signed by its producer; an auditor keeps these. */
export interface Checkpoint {
  ledgerId: string // the volume id this ledger belongs to
  epoch: number
  headHash: string
  time: number
  producer: string
  signature: string
}

export interface Committed {
  txid: string
  epoch: number
}

export interface Ledger {
  /** Volume id this ledger belongs to (checked at open). */
  readonly ledgerId: string
  /** Driver name for reports: 'embedded' | 'multichain' | 'memory'. */
  readonly driver: string
  /**
   * Append payloads; resolves once every one of them is durably committed in a
   * block (fsync'ed for the embedded driver). Idempotent: a payload already on
   * the ledger resolves to its existing txid and epoch and is not added twice.
   */
  append(payloads: Buffer[]): Promise<Committed[]>
  /** Blocks with from <= epoch <= to (to defaults to the head), in order. */
  read(fromEpoch: number, toEpoch?: number): AsyncIterable<Block>
  /**
   * Calls onBlock for every block from fromEpoch on, existing ones first, then
   * new ones as they are committed, in order and each exactly once.
   * Returns a function that stops following. If reading fails (or onBlock
   * throws), following stops and onError, when given, receives the error.
   */
  follow(fromEpoch: number, onBlock: (b: Block) => void, onError?: (e: Error) => void): () => void
  /** Current head as a signed checkpoint. */
  head(): Promise<Checkpoint>
  close(): Promise<void>
}

/** What the auditor needs beyond reading: the driver knows what can be checked of its blocks. */
export interface AuditableLedger extends Ledger {
  /**
   * Check the whole chain (embedded: hashes, Merkle roots, signatures, links; MultiChain: links and heights).
   * Throws CorruptStateError. A driver that reads whole blocks while checking may hand each one to onBlock,
   * in order, so the caller need not read them again; one that does not leaves the caller to read() them.
   */
  validateAll(onProgress?: (epoch: number, head: number) => void, onBlock?: (b: Block) => void): Promise<void>
  /** The checkpoint of a committed block. */
  checkpoint(epoch: number): Promise<Checkpoint>
  /** Does the ledger still extend this checkpoint? */
  consistency(cp: Checkpoint): Promise<ConsistencyResult>
}
