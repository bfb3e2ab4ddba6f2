/**
 * Worker-thread side of the embedded ledger's writer (see writer.ts). Owns
 * the write connection; commits one batch per request, in arrival order.
 * It can also run another SQLite file's WAL checkpoints between commits
 * (writer.ts, hostCheckpoints), so that a mount needs no thread of its own
 * for them.
 */
import Database from 'better-sqlite3'
import {createPrivateKey} from 'node:crypto'
import {parentPort, workerData} from 'node:worker_threads'
import {identityFromPrivateKey} from '../../crypto/sign.js'
import {LedgerStore} from './store.js'
import {flattenError, unpackBatch} from './wire.js'
import type {WorkerInit, WorkerReply, WorkerRequest} from './writer.js'

const init = workerData as WorkerInit
const port = parentPort!
const reply = (m: WorkerReply) => port.postMessage(m)
const identity = identityFromPrivateKey(createPrivateKey({key: Buffer.from(init.pkcs8), format: 'der', type: 'pkcs8'}))

let store: LedgerStore | undefined
try {
  store = LedgerStore.openWriter({file: init.file, ledgerId: init.ledgerId, identity, tailBlocks: init.tailBlocks})
  reply({type: 'ready', head: store.head})
} catch (error) {
  reply({type: 'open-failed', error: flattenError(error)})
}

/** WAL checkpoints of other files: file -> its connection and timer */
const hosted = new Map<string, {db: Database.Database; timer: NodeJS.Timeout}>()

function checkpoint(db: Database.Database): void {
  try {
    db.pragma('wal_checkpoint(PASSIVE)') // never waits for that file's writer
  } catch {
    // busy or closed meanwhile: the next round tries again
  }
}

function stopHosting(file: string): void {
  const job = hosted.get(file)
  if (!job) return
  hosted.delete(file)
  clearInterval(job.timer)
  checkpoint(job.db)
  job.db.close()
}

port.on('message', (m: WorkerRequest) => {
  if (m.type === 'checkpoints') {
    try {
      if (hosted.has(m.file)) throw new Error(`${m.file}: its checkpoints already run here`)
      const db = new Database(m.file, {fileMustExist: true, timeout: 1000})
      hosted.set(m.file, {db, timer: setInterval(() => checkpoint(db), m.everyMs)})
      reply({type: 'checkpoints-started', file: m.file})
    } catch (error) {
      reply({type: 'checkpoints-failed', file: m.file, error: flattenError(error)})
    }
    return
  }
  if (m.type === 'checkpoints-stop') {
    stopHosting(m.file)
    reply({type: 'checkpoints-stopped', file: m.file})
    return
  }
  if (m.type === 'close') {
    for (const file of [...hosted.keys()]) stopHosting(file)
    store?.close()
    store = undefined
    reply({type: 'closed'})
    port.close()
    return
  }
  try {
    if (!store) throw new Error('ledger store is not open')
    reply({type: 'done', id: m.id, outcome: store.commit(unpackBatch(m), identity, m.now)})
  } catch (error) {
    reply({type: 'failed', id: m.id, error: flattenError(error)})
  }
})
