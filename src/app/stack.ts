/**
 * The composition root for a writable volume: layout and lock, identities,
 * the embedded ledger, the broadcast, the journal and recorder (with crash
 * recovery), and the LocalVolume on top. close() undoes it all in order.
 */
import fs from 'node:fs'
import {Broadcast} from '../broadcast/broadcast.js'
import type {Delivery} from '../broadcast/types.js'
import {generateIdentity, loadIdentity, saveIdentity, type Identity} from '../crypto/sign.js'
import {HistoryStore} from '../history/store.js'
import {catchUp} from '../history/recover.js'
import {undoUnrecorded} from '../volume/intents.js'
import {opLogRecord, recoverOpLog} from '../volume/oplog.js'
import {actingAs} from '../volume/acting.js'
import {Journal} from '../volume/journal.js'
import {EmbeddedLedger} from '../ledger/embedded/index.js'
import type {AuditableLedger} from '../ledger/types.js'
import {lockVolume, openLayout, type VolumeLayout, type VolumeMeta} from '../volume/layout.js'
import {LocalVolume} from '../volume/local-volume.js'
import {Recorder} from '../volume/recorder.js'
import {loadOrCreateIdentity} from './identity.js'
import {checkChoice, newLedgerMeta, openVolumeLedger, type LedgerChoice} from './ledger.js'

export interface VolumeStack {
  layout: VolumeLayout
  meta: VolumeMeta
  created: boolean
  member: string
  volume: LocalVolume
  /** records operations that are not file-system calls (membership changes) */
  recorder: Recorder
  /** the version store; undefined when opened with history: false */
  history?: HistoryStore
  ledger: AuditableLedger
  recovered: {resent: number; placed: number}
  recordCount(): number
  close(): Promise<void>
}

/** The volume's own key: signs its ledger's blocks and checkpoints. */
function nodeIdentity(layout: VolumeLayout): Identity {
  if (!fs.existsSync(layout.nodeKey)) saveIdentity(layout.nodeKey, generateIdentity())
  return loadIdentity(layout.nodeKey)
}

export interface StackOptions extends LedgerChoice {
  create: boolean
  identity?: string
  purpose: string
  history?: boolean
  /** a MultiChain reorganisation or re-sent batch, for the user to see */
  onWarning?: (message: string) => void
}

export async function openVolumeStack(dir: string, opts: StackOptions): Promise<VolumeStack> {
  const user = loadOrCreateIdentity(opts.identity)
  const {layout, meta, created} = openLayout(dir, {create: opts.create, ledger: newLedgerMeta(opts)})
  const unlock = lockVolume(layout, opts.purpose)
  const undo: Array<() => unknown> = [unlock]
  const closeAll = async () => {
    for (const step of undo.reverse()) await step()
    undo.length = 0
  }

  try {
    if (!created) checkChoice(layout, meta, opts)
    const opened = await openVolumeLedger(layout, meta, {write: true, identity: nodeIdentity(layout), onWarning: opts.onWarning})
    const ledger = opened.ledger
    undo.push(() => opened.close())
    // On MultiChain one envelope per sender waits for its block (seconds, not milliseconds): let each carry
    // more records, while staying well below a chain's data limit per transaction (2 MiB by default).
    const mc = ledger.driver === 'multichain'
    const bc = new Broadcast({ledger, identity: user, file: layout.broadcast, maxBatch: mc ? 10_000 : undefined, maxBatchBytes: mc ? 512 * 1024 : undefined})
    // The journal's WAL checkpoints run on the embedded ledger's writer thread where there is one (one V8 isolate less).
    const host = ledger instanceof EmbeddedLedger ? ledger.hostCheckpoints.bind(ledger) : true
    const journal = Journal.open(layout.journal, meta.id, {backgroundCheckpoints: host})
    undo.push(() => journal.close())

    await bc.open()
    undo.push(() => bc.close())
    await bc.flush() // whatever the outbox and queue held after a crash is committed now
    const recorder = new Recorder(journal, bc, user.pid)
    const unplaced = journal.unplaced()
    let recovered = {resent: 0, placed: 0}
    if (unplaced.length > 0) {
      const want = new Set(unplaced.map(r => r.hash.toString('hex')))
      const found = new Map<string, Delivery>()
      const scan = bc.deliver(journal.maxPlacedEpoch(), d => {
        const k = d.payload.toString('hex')
        if (want.has(k)) found.set(k, d)
      }, () => {})
      await scan.done

      recovered = recorder.recover(found)
      await recorder.committed()
    }

    // creates and unlinks the FUSE binding made and answered, whose records a crash kept from the journal
    const opLog = await recoverOpLog(layout.opLog, layout.root, {
      journaled: () => journal.opLogJournaled(),
      // the member it ran for, if the entry names one (a served volume's): the record names them as a live one would
      record: async e => {
        const record = () => recorder.record(opLogRecord(e.op, e.path, e), e.who, undefined, {at: e.at, opLogSeq: e.seq})
        await (e.member === undefined ? record() : actingAs(e.member, record))
      },
    })
    undo.push(() => fs.closeSync(opLog.fd)) // after the volume has closed (undo runs backwards)
    if (opLog.recovered > 0) {
      await recorder.committed()
      opts.onWarning?.(`recovery: journaled ${opLog.recovered} create/unlink record(s) from the op log (made and answered before a crash)`)
    }

    const undone = undoUnrecorded(journal, layout.root).filter(u => u.undone)
    for (const u of undone) opts.onWarning?.(`recovery: removed ${u.path}: ${u.op} was cut off by a crash before its record (the call had not returned)`)

    let history: HistoryStore | undefined
    if (opts.history ?? true) {
      history = new HistoryStore(layout.history, {create: true})
      await catchUp(history, layout.root) // captures a crash cut short
    }

    process.umask(0) // modes come from the callers, already masked by the kernel
    const volume = new LocalVolume(layout.root, recorder, {history, opLog: {fd: opLog.fd, nextSeq: opLog.nextSeq}})
    undo.push(() => volume.close())
    return {
      layout, meta, created, member: user.pid, volume, history, ledger, recorder,
      recovered,
      recordCount: () => journal.count(),
      close: closeAll,
    }
  } catch (error) {
    await closeAll()
    throw error
  }
}
