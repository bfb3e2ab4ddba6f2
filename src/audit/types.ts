/** What verify reports: every divergence as a value with its evidence. */

export type DivergenceKind =
  | 'modified' // file content differs from the last recorded digest
  | 'missing' // recorded entry is not on disk
  | 'unexpected' // on disk, never recorded (added outside PacioFS)
  | 'type' // e.g. a file where a directory was recorded
  | 'mode' // permission bits
  | 'owner' // uid/gid
  | 'link-target' // symlink target
  | 'xattr' // extended attribute added, changed or removed
  | 'record-tampered' // a journal record does not hash to its value on the ledger, or is not on the ledger at all
  | 'record-missing' // the ledger holds a hash the journal has no record for
  | 'ledger-broken' // a block's hash, link, Merkle root or signature is wrong
  | 'signature-invalid' // an envelope's signature does not verify
  | 'sequence-gap' // a sender's envelopes are missing, reordered or replayed
  | 'checkpoint-inconsistent' // the ledger does not extend a checkpoint the auditor kept
  | 'history-missing' // a recorded version is not in the history store (manifest or chunk absent)
  | 'history-tampered' // a stored version was altered: a chunk does not hash to its name, or a manifest is malformed
  | 'interrupted' // a write was cut off by a crash: content not recorded (not tampering)

export interface RecordRef {
  epoch: number
  txid: string
  author: string // member pid, and uid in the record
  uid?: number
  op?: string
}

export interface Divergence {
  path: string // volume path, or '' for ledger-level findings
  kind: DivergenceKind
  expected?: string
  found?: string
  record?: RecordRef
  detail?: string
}

export interface VerifyReport {
  volume: string
  volumeId: string
  head: {epoch: number; hash: string}
  checked: {blocks: number; records: number; entries: number; files: number; bytes: number}
  /** set when only the ledger's history since an earlier verify was checked (see --full) */
  incremental?: {since: number}
  divergences: Divergence[]
  status: 'clean' | 'divergent'
  ms: number
}
