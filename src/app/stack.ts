/**
 * The composition root for a writable volume: layout and lock, identities,
 * the embedded ledger, the broadcast, the journal and recorder (with crash
 * recovery), and the LocalVolume on top. close() undoes it all in order.
 */
import fs from 'node:fs'
import {Broadcast} from '../broadcast/broadcast.js'
import type {Delivery} from '../broadcast/types.js'
import {generateIdentity, loadIdentity, saveIdentity, type Identity} from '../crypto/sign.js'
import {EmbeddedLedger} from '../ledger/embedded/index.js'
import {HistoryStore} from '../history/store.js'
import {catchUp} from '../history/recover.js'
import {Journal} from '../volume/journal.js'
import {lockVolume, openLayout, type VolumeLayout, type VolumeMeta} from '../volume/layout.js'
import {LocalVolume} from '../volume/local-volume.js'
import {Recorder} from '../volume/recorder.js'
import {loadOrCreateIdentity} from './identity.js'

export interface VolumeStack {
  layout: VolumeLayout
  meta: VolumeMeta
  created: boolean
  member: string
  volume: LocalVolume
  /** the version store; undefined when opened with history: false */
  history?: HistoryStore
  recovered: {resent: number; placed: number}
  recordCount(): number
  close(): Promise<void>
}

/** The volume's own key: signs its ledger's blocks and checkpoints. */
function nodeIdentity(layout: VolumeLayout): Identity {
  if (!fs.existsSync(layout.nodeKey)) saveIdentity(layout.nodeKey, generateIdentity())
  return loadIdentity(layout.nodeKey)
}

export async function openVolumeStack(dir: string, opts: {create: boolean; identity?: string; purpose: string; history?: boolean}): Promise<VolumeStack> {
  const user = loadOrCreateIdentity(opts.identity)
  const {layout, meta, created} = openLayout(dir, {create: opts.create})
  const unlock = lockVolume(layout, opts.purpose)
  const undo: Array<() => unknown> = [unlock]
  const closeAll = async () => {
    for (const step of undo.reverse()) await step()
    undo.length = 0
  }

  try {
    const ledger = await EmbeddedLedger.open({file: layout.ledger, ledgerId: meta.id, identity: nodeIdentity(layout)})
    undo.push(() => ledger.close())
    const bc = new Broadcast({ledger, identity: user, file: layout.broadcast})
    const journal = Journal.open(layout.journal, meta.id, {backgroundCheckpoints: true})
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

    let history: HistoryStore | undefined
    if (opts.history ?? true) {
      history = new HistoryStore(layout.history, {create: true})
      await catchUp(history, layout.root) // captures a crash cut short
    }

    process.umask(0) // modes come from the callers, already masked by the kernel
    const volume = new LocalVolume(layout.root, recorder, {history})
    undo.push(() => volume.close())
    return {
      layout, meta, created, member: user.pid, volume, history,
      recovered,
      recordCount: () => journal.count(),
      close: closeAll,
    }
  } catch (error) {
    await closeAll()
    throw error
  }
}
