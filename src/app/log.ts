/**
 * `paciofs log`: the records in ledger order, joined with their journal
 * preimages. Opens everything read-only; works while the volume is mounted.
 */
import {FifoChecker} from '../broadcast/validate.js'
import type {Delivery} from '../broadcast/types.js'
import type {Violation} from '../broadcast/types.js'
import {decodeCanonical} from '../crypto/canonical.js'
import {PacioError} from '../errors.js'
import type {Block, Checkpoint} from '../ledger/types.js'
import {Journal} from '../volume/journal.js'
import {layoutOf, lockHolder, readMeta} from '../volume/layout.js'
import {checkOpLog} from '../volume/oplog.js'
import type {FsRecord} from '../volume/types.js'
import {globToRegExp} from './glob.js'
import {checkChoice, openVolumeLedger} from './ledger.js'

export interface LogEntry {
  epoch: number
  time: number // block time, ms
  txid: string
  sender: string // pid of the envelope's signer
  seq: number
  hash: string // the salted hash on the ledger
  record?: FsRecord // undefined when the journal has no preimage for the hash
}

export interface LogQuery {
  volume: string
  since?: number
  until?: number
  path?: string
  follow?: boolean
  /** --chain, for a volume that should be on it (checked against volume.json) */
  chain?: string
  /** stops --follow */
  signal?: AbortSignal
  onViolation?: (v: Violation) => void
}

function parseRecord(bytes: Buffer): FsRecord | undefined {
  try {
    return decodeCanonical(bytes) as unknown as FsRecord
  } catch {
    return undefined
  }
}

export async function* readLog(q: LogQuery): AsyncGenerator<LogEntry> {
  if (q.since !== undefined && (!Number.isSafeInteger(q.since) || q.since < 0)) throw new PacioError('EINPUT', `--since must be a block epoch (a whole number >= 0), got ${q.since}`)
  if (q.until !== undefined && (!Number.isSafeInteger(q.until) || q.until < 0)) throw new PacioError('EINPUT', `--until must be a block epoch (a whole number >= 0), got ${q.until}`)
  const layout = layoutOf(q.volume)
  const meta = readMeta(layout)
  if (q.chain !== undefined) checkChoice(layout, meta, {chain: q.chain})
  const opened = await openVolumeLedger(layout, meta, {write: false})
  const {ledger} = opened
  let journal: Journal | undefined
  try {
    journal = Journal.open(layout.journal, meta.id, {readonly: true})
    checkOpLog(layout.opLog, journal.opLogJournaled(), lockHolder(layout) !== undefined)
  } catch (error) {
    journal?.close()
    await opened.close()
    throw error
  }
  const match = q.path ? globToRegExp(q.path) : undefined
  const entries = function * (b: Block, checker: FifoChecker): Generator<LogEntry> {
    const delivered: Delivery[] = []
    checker.checkBlock(b, d => delivered.push(d), v => q.onViolation?.(v))
    for (const d of delivered) {
      const row = journal.byHash(d.payload)
      const record = row ? parseRecord(row.record) : undefined
      if (match && !(record && (match.test(record.path) || (record.to !== undefined && match.test(record.to))))) continue
      yield {epoch: d.epoch, time: b.time, txid: d.txid, sender: d.pid, seq: d.seq, hash: d.payload.toString('hex'), record}
    }
  }

  try {
    // senders' positions at --since come from the blocks before it (checked silently)
    const checker = new FifoChecker()
    const since = q.since ?? 0
    if (since > 0) for await (const b of ledger.read(0, Math.min(since, (await ledger.head()).epoch + 1) - 1)) checker.checkBlock(b, () => {}, () => {})
    let next = since
    for (;;) {
      const head = (await ledger.head()).epoch
      const to = Math.min(q.until ?? head, head)
      if (next <= to) {
        for await (const b of ledger.read(next, to)) yield * entries(b, checker)
        next = to + 1
      }

      if (!q.follow || q.signal?.aborted || (q.until !== undefined && next > q.until)) return
      await new Promise(resolve => setTimeout(resolve, 250))
    }
  } finally {
    journal.close()
    await opened.close()
  }
}

/** The ledger head as a signed checkpoint (read-only). */
export async function headCheckpoint(volume: string, chain?: string): Promise<Checkpoint> {
  const layout = layoutOf(volume)
  const meta = readMeta(layout)
  if (chain !== undefined) checkChoice(layout, meta, {chain})
  const opened = await openVolumeLedger(layout, meta, {write: false})
  try {
    return await opened.ledger.head()
  } finally {
    await opened.close()
  }
}
