/**
 * The volume's history as a sequence of checked records: the ledger read in
 * order, each payload joined with its journal row, and the row checked
 * against the payload (sha256(salt ‖ record) must be the hash on the ledger).
 * A record that fails the check is kept as untrusted, so that anything
 * depending on it can be refused rather than answered wrongly.
 */
import {FifoChecker} from '../broadcast/validate.js'
import type {Delivery} from '../broadcast/types.js'
import {decodeCanonical} from '../crypto/canonical.js'
import {sha256} from '../crypto/hash.js'
import {EmbeddedLedger} from '../ledger/embedded/index.js'
import type {Ledger} from '../ledger/types.js'
import {Journal} from '../volume/journal.js'
import {layoutOf, readMeta} from '../volume/layout.js'
import type {FsRecord} from '../volume/types.js'
import {ExpectedTree} from '../audit/expected.js'

export interface TimelineEntry {
  epoch: number
  time: number // block time, ms
  txid: string
  /** the journal's record; undefined when the journal has none for the ledger's hash */
  record?: FsRecord
  /** the record hashes, with its salt, to the value on the ledger */
  trusted: boolean
  /** the path the journal row names (also for untrusted records) */
  path?: string
  to?: string
}

export interface Timeline {
  head: number
  entries: TimelineEntry[]
}

/**
 * Reads the whole timeline, read-only (works while the volume is mounted).
 * `ledger`: the volume's ledger, already open (left open); default: the
 * embedded ledger file, opened and closed here.
 */
export async function readTimeline(volume: string, given?: Ledger): Promise<Timeline> {
  const layout = layoutOf(volume)
  const meta = readMeta(layout)
  const ledger = given ?? await EmbeddedLedger.openReadOnly(layout.ledger, {ledgerId: meta.id})
  const journal = Journal.open(layout.journal, meta.id, {readonly: true})
  try {
    const head = (await ledger.head()).epoch
    const entries: TimelineEntry[] = []
    const checker = new FifoChecker()
    for await (const b of ledger.read(0, head)) {
      const delivered: Delivery[] = []
      checker.checkBlock(b, d => delivered.push(d), () => {})
      for (const d of delivered) {
        const row = journal.byHash(d.payload)
        if (!row) {
          entries.push({epoch: d.epoch, time: b.time, txid: d.txid, trusted: false})
          continue
        }

        let record: FsRecord | undefined
        try {
          record = decodeCanonical(row.record) as unknown as FsRecord
        } catch { /* untrusted below */ }

        const trusted = record !== undefined && sha256(row.salt, row.record).equals(d.payload)
        entries.push({epoch: d.epoch, time: b.time, txid: d.txid, record, trusted, path: row.path, to: record?.to})
      }
    }

    return {head, entries}
  } finally {
    journal.close()
    if (!given) await ledger.close()
  }
}

/** The tree after every record up to and including `epoch`; `tainted` are paths an untrusted record touched. */
export function treeAt(t: Timeline, epoch: number): {tree: ExpectedTree; tainted: Map<string, number>} {
  const tree = new ExpectedTree()
  const tainted = new Map<string, number>()
  for (const e of t.entries) {
    if (e.epoch > epoch) break
    if (e.trusted && e.record) {
      tree.apply(e.record, {epoch: e.epoch, txid: e.txid, author: e.record.who.member, uid: e.record.who.uid, op: e.record.op})
    } else {
      for (const p of [e.path, e.record?.path, e.to]) if (p) tainted.set(p, e.epoch)
    }
  }

  return {tree, tainted}
}
