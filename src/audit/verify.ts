/**
 * AuAPI-1: is the disk still what the ledger says happened?
 *  1. the ledger: every block's hash, link, Merkle root and signature; a
 *     checkpoint kept earlier must still be on it;
 *  2. the envelopes: signatures and each sender's sequence (FifoChecker);
 *  3. the journal: every record must hash, with its salt, to a value on the
 *     ledger, and every value on the ledger must have its record;
 *  4. the records, in ledger order, give the expected tree;
 *  5. the backing directory is scanned and hashed; every difference is a
 *     Divergence with the record that says what should be there.
 * Opens everything read-only: verify never writes to the volume.
 */
import fs from 'node:fs'
import os from 'node:os'
import {FifoChecker} from '../broadcast/validate.js'
import type {Violation} from '../broadcast/types.js'
import {parseCommitted, parseCommittedText} from '../crypto/canonical.js'
import {CorruptStateError, PacioError} from '../errors.js'
import type {AuditableLedger, Block, Checkpoint} from '../ledger/types.js'
import {Journal} from '../volume/journal.js'
import {checkOpLog} from '../volume/oplog.js'
import {EmbeddedLedger} from '../ledger/embedded/index.js'
import {layoutOf, lockHolder, readMeta, type VolumeLayout, type VolumeMeta} from '../volume/layout.js'
import {normalize} from '../volume/paths.js'
import type {FsRecord} from '../volume/types.js'
import {Anchors} from './anchors.js'
import {Replay} from './replay.js'
import {RowReader, type CheckedRow} from './rows.js'
import {defaultCacheDir, dropIndex, loadIndex, saveIndex, type VerifiedIndex} from './cache.js'
import {TreeComparer} from './compare.js'
import {ExpectedTree} from './expected.js'
import {HistoryJobs} from './history.js'
import {WorkerPool} from './pool.js'
import {scanTree, type ActualEntry, type ScanProgress} from './scan.js'
import type {Divergence, RecordRef, VerifyReport} from './types.js'

export interface VerifyOptions {
  volume: string
  /** only report (and scan) below this volume path */
  path?: string
  /** a checkpoint the auditor kept: the ledger must extend it */
  checkpoint?: Checkpoint
  threads?: number
  /** where the auditor's verified index lives (default ~/.cache/paciofs/verify) */
  cacheDir?: string
  /** ignore the verified index: check every block and every record */
  full?: boolean
  onPhase?: (phase: string) => void
  onProgress?: (p: ScanProgress & {expectedBytes: number}) => void
  /**
   * Opens the volume's ledger read-only (the driver volume.json names; the
   * composition root passes it in, so that audit/ does not pick drivers).
   * Default: the embedded ledger.
   */
  openLedger?: (layout: VolumeLayout, meta: VolumeMeta) => Promise<{ledger: AuditableLedger; close(): Promise<void>}>
  /** the caller holds the volume's lock itself (repair): verify only refuses a lock held by another process */
  ownLock?: boolean
  /** hands over the expected tree the report was judged against (repair restores from it) */
  onExpected?: (tree: ExpectedTree) => void
}

async function openEmbedded(layout: VolumeLayout, meta: VolumeMeta) {
  const ledger = await EmbeddedLedger.openReadOnly(layout.ledger, {ledgerId: meta.id, tailBlocks: 0})
  return {ledger, close: () => ledger.close()}
}

/** Reads and checks a checkpoint file; malformed input is an EINPUT error, never a crash. */
export function readCheckpointFile(file: string): Checkpoint {
  let v: Record<string, unknown>
  try {
    v = JSON.parse(fs.readFileSync(file, 'utf8'))
  } catch (error) {
    throw new PacioError('EINPUT', `checkpoint ${file}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : 'not valid JSON'}`)
  }

  const ok = v && typeof v === 'object' && typeof v.ledgerId === 'string' && Number.isSafeInteger(v.epoch) && (v.epoch as number) >= 0 &&
    typeof v.headHash === 'string' && /^[0-9a-f]{64}$/.test(v.headHash) && typeof v.producer === 'string' && typeof v.signature === 'string' &&
    Number.isSafeInteger(v.time)
  if (!ok) throw new PacioError('EINPUT', `checkpoint ${file}: not a PacioFS checkpoint (needs ledgerId, epoch, headHash, time, producer, signature)`)
  return {ledgerId: v.ledgerId as string, epoch: v.epoch as number, headHash: v.headHash as string, time: v.time as number,
    producer: v.producer as string, signature: v.signature as string}
}

function violationKind(v: Violation): Divergence['kind'] {
  if (v.kind === 'signature-invalid') return 'signature-invalid'
  if (v.kind === 'malformed') return 'ledger-broken'
  return 'sequence-gap'
}

/** Findings that mean the records themselves cannot be trusted: no verified index is kept after them. */
const TRUST_KINDS = new Set<Divergence['kind']>(['ledger-broken', 'signature-invalid', 'sequence-gap', 'record-tampered', 'record-missing', 'checkpoint-inconsistent'])
/**
 * A damaged history store: the verified index is dropped. An incremental run
 * checks only versions recorded since the index, so it would not see an old
 * version that is still missing or altered; the next run checks them all.
 */
const HISTORY_KINDS = new Set<Divergence['kind']>(['history-missing', 'history-tampered'])

/** The journal rows an incremental verify must look at: those the new blocks anchor, and every row added after maxJseq. */
function * newRows(journal: Journal, reader: RowReader, anchors: Anchors, maxJseq: number): Generator<CheckedRow> {
  const seen = new Set<number>()
  for (const key of anchors.all()) {
    const row = journal.auditRowByHash(key)
    if (row) {
      seen.add(row[0])
      yield reader.fromBytes(row)
    }
  }

  for (const row of reader.after(maxJseq)) if (!seen.has(row.jseq)) yield row
}

/** Where the journal says a row was placed (the rest of a row only matters for a finding). */
function rowRef(journal: Journal, jseq: number): RecordRef | undefined {
  const r = journal.row(jseq)!
  return r.epoch === null ? undefined : {epoch: r.epoch, txid: r.txid ?? '', author: r.pid ?? ''}
}

/**
 * Scan sets (of 4,096 entries) the walk may post before the expected tree is
 * complete: enough to keep the workers busy while the main thread checks the
 * ledger, few enough that the entries waiting for the tree stay small.
 */
const SCAN_AHEAD = 8

const withOp = (ref: RecordRef | undefined, op: string) => ref && {...ref, op}

export async function verifyVolume(opts: VerifyOptions): Promise<VerifyReport> {
  const started = Date.now()
  const layout = layoutOf(opts.volume)
  const meta = readMeta(layout)
  const holder = lockHolder(layout)
  if (holder !== undefined && !(opts.ownLock && holder === process.pid)) {
    throw new PacioError('EBUSY', `volume ${layout.root} is mounted or served by process ${holder}; verify needs it at rest`,
      {suggestion: 'unmount it first (Ctrl-C the mount, or `fusermount -u <mountpoint>`), then verify'})
  }

  const subtree = opts.path ? normalize(opts.path) : undefined
  if (opts.checkpoint && opts.checkpoint.ledgerId !== meta.id) {
    throw new PacioError('EINPUT', `the checkpoint belongs to another volume (${opts.checkpoint.ledgerId}, this is ${meta.id})`)
  }

  const divergences: Divergence[] = []
  const within = (p: string) => !subtree || subtree === '/' || p === subtree || p.startsWith(subtree + '/')
  const opened = await (opts.openLedger ?? openEmbedded)(layout, meta)
  const {ledger} = opened
  let journal: Journal | undefined
  let pool: WorkerPool | undefined
  let releaseScan: (() => void) | undefined
  try {
    journal = Journal.open(layout.journal, meta.id, {readonly: true})
    checkOpLog(layout.opLog, journal.opLogJournaled(), lockHolder(layout) !== undefined)
    const head = await ledger.head()

    // the disk is scanned and hashed on the worker threads meanwhile (step 5 below)
    pool = new WorkerPool(opts.threads ?? Math.max(1, Math.min(os.availableParallelism(), 8)), layout.history)
    // entries that arrive before the expected tree is complete wait here; later ones are compared at once.
    // The walk runs only SCAN_AHEAD sets ahead of the tree: the workers check the history store's versions
    // as the journal pass finds them, and scan the rest once the tree is there (nothing waits in memory).
    let expectedBytes = 0
    let comparer: TreeComparer | undefined
    const early: Array<[string, ActualEntry]> = []
    let treeReady!: () => void
    const until = new Promise<void>(resolve => {
      treeReady = resolve
    })
    releaseScan = treeReady
    const scanning = scanTree(pool, layout.root, (p, e) => (comparer ? comparer.actual(p, e) : early.push([p, e])),
      {subtree, onProgress: p => opts.onProgress?.({...p, expectedBytes}), ahead: {sets: SCAN_AHEAD, until}})
    scanning.catch(() => {}) // awaited below

    // 0. what an earlier verify established, if the ledger still extends it
    const cacheDir = opts.cacheDir ?? defaultCacheDir()
    let index: VerifiedIndex | undefined = opts.full ? undefined : loadIndex(cacheDir, meta.id)
    if (index) {
      const res = await ledger.consistency(index.checkpoint)
      if (!res.ok) {
        if (res.kind === 'checkpoint-mismatch' || res.kind === 'truncated' || res.kind === 'checkpoint-signature') {
          divergences.push({path: '', kind: 'checkpoint-inconsistent', expected: res.expected ?? index.checkpoint.headHash, found: res.found,
            record: {epoch: res.epoch, txid: '', author: ''}, detail: `the ledger no longer extends the state a previous verify established: ${res.kind}: ${res.detail}`})
        }

        index = undefined // verify everything; a broken block is found and reported below
      }
    }

    const from = index ? index.checkpoint.epoch + 1 : 0

    // 1 and 2. the ledger itself, and the envelopes in ledger order (each block read once);
    // a block that cannot be read is skipped and reported
    opts.onPhase?.('ledger')
    const brokenEpochs = new Set<number>()
    const anchors = new Anchors()
    const checker = new FifoChecker(index?.checker)
    let blocks = 0
    const onBlock = (b: Block) => {
      blocks++
      checker.checkBlockEnvelopes(b, (e, txid) => anchors.addAll(e.payloads, b.epoch, txid, e.pid), v => {
        brokenEpochs.add(v.epoch)
        divergences.push({path: '', kind: violationKind(v), record: {epoch: v.epoch, txid: v.txid, author: v.pid ?? ''}, detail: `${v.kind}: ${v.detail}`})
      })
    }

    let next = from
    if (!index) {
      try {
        await ledger.validateAll(undefined, b => {
          onBlock(b)
          next = b.epoch + 1
        })
      } catch (error) {
        if (!(error instanceof CorruptStateError)) throw error
        brokenEpochs.add(error.epoch ?? -1)
        divergences.push({path: '', kind: 'ledger-broken', record: error.epoch === undefined ? undefined : {epoch: error.epoch, txid: '', author: ''},
          detail: error.message})
      }
    }

    if (opts.checkpoint) {
      const res = await ledger.consistency(opts.checkpoint)
      if (!res.ok) {
        divergences.push({path: '', kind: 'checkpoint-inconsistent', expected: res.expected ?? opts.checkpoint.headHash, found: res.found,
          record: {epoch: res.epoch, txid: '', author: ''}, detail: `${res.kind}: ${res.detail}`})
      }
    }

    opts.onPhase?.('envelopes')
    for (let e = next; e <= head.epoch;) {
      try {
        for await (const b of ledger.read(e, head.epoch)) { // up to the head taken above: a MultiChain chain grows meanwhile
          onBlock(b)
          e = b.epoch + 1
        }

        break
      } catch (error) {
        if (!brokenEpochs.has(e)) {
          divergences.push({path: '', kind: 'ledger-broken', record: {epoch: e, txid: '', author: ''}, detail: (error as Error).message})
          brokenEpochs.add(e)
        }

        e++
      }
    }

    // 3 and 4. the journal against the ledger, replayed into the expected tree as it streams by
    opts.onPhase?.('journal')
    const tree = index?.tree ?? new ExpectedTree()
    const replay = new Replay(tree)
    const versions = new HistoryJobs(fs.existsSync(layout.history) ? pool : undefined) // checked on the workers as they come
    let records = 0
    let beyondHead = 0
    let beyondMax = 0
    // incrementally: the rows the new blocks anchor, and any row added since the last verify
    const reader = new RowReader(journal)
    const rows = index ? newRows(journal, reader, anchors, index.maxJseq) : reader.after(0)
    const maxJseq = journal.maxJseq()
    for (const row of rows) {
      records++
      const {jseq, hash, ok} = row
      const order = anchors.get(hash)
      if (order !== undefined) anchors.markMatched(order) // accounted for: not "record missing"
      let record: FsRecord | undefined
      if (ok) {
        try {
          record = parseCommittedText(row.text) as unknown as FsRecord
        } catch { /* reported below */ }
      }

      if (!record || typeof record !== 'object') {
        let path: string | undefined
        try {
          path = (parseCommittedText(row.text) as {path?: unknown}).path as string | undefined
        } catch { /* not even JSON */ }

        if (typeof path !== 'string') path = journal.row(jseq)!.path
        if (order !== undefined) replay.skip(order)
        tree.untrusted.add(path)
        if (within(path)) {
          divergences.push({path, kind: 'record-tampered', expected: hash.toString('hex'), found: row.actual,
            record: order === undefined ? rowRef(journal, jseq) : anchors.ref(order), detail: 'the journal record does not hash, with its salt, to its value on the ledger'})
        }

        continue
      }

      const path = record.path
      if (order === undefined) {
        tree.untrusted.add(path)
        const rowEpoch = journal.row(jseq)!.epoch
        if (rowEpoch !== null && brokenEpochs.has(rowEpoch)) continue // its block is reported already
        if (rowEpoch !== null && rowEpoch > head.epoch) {
          beyondHead++ // placed in a block the ledger no longer has: reported once below
          beyondMax = Math.max(beyondMax, rowEpoch)
          continue
        }

        if (within(path)) {
          divergences.push({path, kind: 'record-tampered', expected: 'on the ledger', found: 'absent', record: withOp(rowRef(journal, jseq), record.op),
            detail: `journal record (${record.op}) whose hash the ledger does not hold`})
        }

        continue
      }

      replay.add(order, record, anchors.recordRef(order, record.who.member, record.who.uid, record.op))
      if (record.digest !== undefined && within(record.path) && (record.op === 'create' || record.op === 'write' || record.op === 'truncate')) {
        versions.add(record.digest, record.size ?? 0, jseq, order)
      }
    }

    replay.finish()
    if (beyondHead > 0) {
      divergences.push({path: '', kind: 'ledger-broken', expected: `head at epoch ${beyondMax} or later`, found: `head at epoch ${head.epoch}`,
        detail: `${beyondHead} journal record(s) were committed in blocks up to epoch ${beyondMax}, past the ledger's head: the ledger was truncated`})
    }

    for (const [order, key] of anchors.unmatched()) {
      divergences.push({path: '', kind: 'record-missing', expected: key.toString('hex'), record: anchors.ref(order),
        detail: 'the ledger holds a record hash the journal has no record for'})
    }

    opts.onPhase?.('replay')
    for (const [p, n] of tree.entries) if (within(p) && n.type === 'file') expectedBytes += n.size ?? 0
    comparer = new TreeComparer(tree, within)
    for (const [p, e] of early) comparer.actual(p, e)
    early.length = 0
    treeReady()

    // 4b. every version those records name is in the history store, intact (on the workers, most while the journal pass ran; the rest of the scan follows)
    opts.onPhase?.('history')
    const historyFindings = versions.finish((jseq, order) => {
      const row = journal!.row(jseq)
      const record = row ? parseCommitted(row.record) as unknown as FsRecord : undefined
      if (!record) return undefined
      const at = anchors.ref(order)
      return {record, ref: {epoch: at.epoch, txid: at.txid, author: record.who.member, uid: record.who.uid, op: record.op}}
    })
    historyFindings.catch(() => {}) // awaited below

    // 5. the disk
    opts.onPhase?.('scan')
    await scanning
    divergences.push(...await historyFindings)
    const cmp = comparer
    divergences.push(...cmp.finish())

    const trustworthy = !divergences.some(d => TRUST_KINDS.has(d.kind))
    const unchanged = index !== undefined && index.checkpoint.epoch === head.epoch && index.maxJseq === maxJseq
    if (divergences.some(d => HISTORY_KINDS.has(d.kind))) {
      try {
        dropIndex(cacheDir, meta.id)
      } catch { /* then a later incremental run may miss what this one found: it is reported now */ }
    } else if (trustworthy && head.epoch > 0 && !unchanged) {
      try {
        saveIndex(cacheDir, {checkpoint: await ledger.checkpoint(head.epoch), checker: checker.snapshot(), maxJseq,
          anchoredRows: (index?.anchoredRows ?? 0) + replay.applied, tree})
      } catch { /* a cache that cannot be written only costs time next run */ }
    }

    opts.onExpected?.(tree)
    const serious = divergences.filter(d => d.kind !== 'interrupted')
    return {
      volume: layout.root,
      volumeId: meta.id,
      head: {epoch: head.epoch, hash: head.headHash},
      checked: {blocks, records, entries: cmp.entries, files: cmp.files, bytes: cmp.bytes},
      incremental: index ? {since: index.checkpoint.epoch} : undefined,
      divergences,
      status: serious.length === 0 ? 'clean' : 'divergent',
      ms: Date.now() - started,
    }
  } finally {
    releaseScan?.() // a walk still waiting ends (its sets fail on the closed pool)
    await pool?.close()
    journal?.close()
    await opened.close()
  }
}
