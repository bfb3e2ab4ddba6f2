/**
 * Worker-thread side of the embedded ledger's writer (see writer.ts). Owns
 * the write connection; commits one batch per request, in arrival order.
 *
 * Group fsync: a commit writes its block to the WAL (synchronous=NORMAL) and
 * waits for an fdatasync of the WAL that started after it; only then is it
 * reported done, in commit order. The fdatasync runs on libuv's thread pool,
 * so while one block's is in flight this thread already writes the next
 * block, and one fdatasync covers every block written before it started.
 * The in-process reader never sees a block before it is reported (it reads
 * up to the head it was told); another process reading the file may see a
 * block a few milliseconds before it is durable.
 *
 * It can also run another SQLite file's WAL checkpoints between commits
 * (writer.ts, hostCheckpoints), so that a mount needs no thread of its own
 * for them.
 */
import Database from 'better-sqlite3'
import {createPrivateKey} from 'node:crypto'
import fs from 'node:fs'
import {parentPort, workerData} from 'node:worker_threads'
import {identityFromPrivateKey} from '../../crypto/sign.js'
import {CHECKPOINT_BUSY_MS, TRUNCATE_FRAMES, checkpointWal} from '../../sqlite/wal.js'
import {LedgerStore, type StoredBatch} from './store.js'
import {flattenError, unpackBatch} from './wire.js'
import type {WorkerInit, WorkerReply, WorkerRequest} from './writer.js'

const init = workerData as WorkerInit
const port = parentPort!
const reply = (m: WorkerReply) => port.postMessage(m)
const identity = identityFromPrivateKey(createPrivateKey({key: Buffer.from(init.pkcs8), format: 'der', type: 'pkcs8'}))

let store: LedgerStore | undefined
try {
  store = LedgerStore.openWriter({file: init.file, ledgerId: init.ledgerId, identity, tailBlocks: init.tailBlocks, syncAfter: true})
  reply({type: 'ready', head: store.head})
} catch (error) {
  reply({type: 'open-failed', error: flattenError(error)})
}

/** WAL checkpoints of other files: file -> its connection and timer */
const hosted = new Map<string, {db: Database.Database; timer: NodeJS.Timeout}>()

function checkpoint(db: Database.Database): void {
  checkpointWal(db, TRUNCATE_FRAMES) // PASSIVE, and TRUNCATE once that file's WAL is long (waits CHECKPOINT_BUSY_MS at most)
}

function stopHosting(file: string): void {
  const job = hosted.get(file)
  if (!job) return
  hosted.delete(file)
  clearInterval(job.timer)
  checkpoint(job.db)
  job.db.close()
}

/** Written to the WAL, waiting for an fdatasync that starts after them. */
let unsynced: Array<{id: number; stored: StoredBatch}> = []
let syncing = false
/** After a failed fdatasync nothing more is reported committed: what the WAL holds is in doubt. */
let syncFailure: Error | undefined
let wal: {fd: number; ino: number} | undefined

/** An fd of the WAL that SQLite writes now (it keeps one file while its connection is open; checked anyway). */
function walFd(file: string): number {
  const ino = fs.statSync(file).ino
  if (wal?.ino !== ino) {
    if (wal) fs.closeSync(wal.fd)
    wal = undefined
    const fd = fs.openSync(file, 'r')
    wal = {fd, ino: fs.fstatSync(fd).ino}
  }
  return wal.fd
}

function syncSoon(): void {
  if (syncing || unsynced.length === 0 || !store) return
  const batch = unsynced
  unsynced = []
  const fail = (error: unknown) => {
    syncFailure = new Error(`fdatasync of the ledger's WAL failed: ${(error as Error)?.message ?? error}`)
    for (const b of batch) reply({type: 'failed', id: b.id, error: flattenError(syncFailure)})
  }
  let fd: number
  try {
    fd = walFd(store.walFile)
  } catch (error) {
    fail(error)
    return
  }
  syncing = true
  fs.fdatasync(fd, (error) => {
    syncing = false
    if (error) fail(error)
    else for (const b of batch) reply({type: 'done', id: b.id, stored: b.stored})
    syncSoon()
  })
}

port.on('message', (m: WorkerRequest) => {
  if (m.type === 'checkpoints') {
    try {
      if (hosted.has(m.file)) throw new Error(`${m.file}: its checkpoints already run here`)
      const db = new Database(m.file, {fileMustExist: true, timeout: CHECKPOINT_BUSY_MS})
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
    if (wal) fs.closeSync(wal.fd)
    wal = undefined
    store?.close()
    store = undefined
    reply({type: 'closed'})
    port.close()
    return
  }
  try {
    if (!store) throw new Error('ledger store is not open')
    if (syncFailure) throw syncFailure
    // even a batch of payloads all on the ledger already waits: they may be in a block not yet synced
    const {payloads, ids} = unpackBatch(m)
    unsynced.push({id: m.id, stored: store.commit(payloads, identity, m.now, ids)})
    syncSoon()
  } catch (error) {
    reply({type: 'failed', id: m.id, error: flattenError(error)})
  }
})
