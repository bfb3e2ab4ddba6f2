/**
 * WAL checkpoints off the event loop. SQLite folds its write-ahead log back
 * into the database every 1,000 pages by default, inside whichever commit
 * crosses the mark, with two fsyncs (synchronous=NORMAL): on the journal that
 * is the event loop, stalled every few hundred operations. Here a worker
 * thread with its own connection runs a PASSIVE checkpoint (it never blocks
 * the writer) every `everyMs` (500 ms: each checkpoint is two fsyncs, and an
 * fsync on ext4 makes every other metadata change on the disk wait for the
 * journal commit), and the writer's connection turns its own
 * automatic checkpoints off. If the worker dies, the writer gets them back.
 * A thread that already exists can host the job instead (a CheckpointHost:
 * the embedded ledger's writer thread in a mount), which saves a V8 isolate
 * (about 9 MB of the mount's RSS).
 *
 * Crash safety is SQLite's: a committed transaction is in the WAL whether or
 * not a checkpoint has copied it yet.
 */
import {createRequire} from 'node:module'
import {Worker} from 'node:worker_threads'
import type Database from 'better-sqlite3'
import {CHECKPOINT_BUSY_MS, TRUNCATE_FRAMES, checkpointWal} from '../sqlite/wal.js'

const require = createRequire(import.meta.url)

// Plain JavaScript, so that it runs the same under tsx and from dist/ (checkpointWal's own source text included).
const WORKER = `
const {workerData, parentPort} = require('node:worker_threads')
const Database = require(workerData.sqlite)
const db = new Database(workerData.file, {fileMustExist: true, timeout: workerData.busyMs})
const checkpointWal = ${checkpointWal.toString()}
const run = () => checkpointWal(db, workerData.restartFrames)
const timer = setInterval(run, workerData.everyMs)
parentPort.on('message', () => {
  clearInterval(timer)
  run()
  db.close()
  parentPort.close()
})
`

export interface Checkpointer {
  /** Stops the worker after one last checkpoint; resolves when it has closed its connection. */
  stop(): Promise<void>
}

/**
 * Runs the checkpoints of `file` on a thread of its own making, every
 * `everyMs`; undefined if it cannot. `onLost`: the thread went away before stop().
 */
export type CheckpointHost = (file: string, everyMs: number, onLost: () => void) => Promise<{stop(): Promise<void>}> | undefined

/**
 * `restartFrames`: on its own thread, the WAL length past which a round also empties the WAL (see
 * checkpointWal; tests set it low). A host uses the default.
 */
export function startCheckpointer(db: Database.Database, file: string, everyMs = 500, host?: CheckpointHost, restartFrames = TRUNCATE_FRAMES): Checkpointer {
  const backToSqlite = () => {
    if (db.open) db.pragma('wal_autocheckpoint = 1000') // SQLite's own, in the writer's commits
  }
  const hosted = host?.(file, everyMs, backToSqlite)
  if (hosted) {
    db.pragma('wal_autocheckpoint = 0')
    const job = hosted.catch(() => {
      backToSqlite()
      return undefined
    })
    return {stop: async () => (await job)?.stop()}
  }

  const worker = new Worker(WORKER, {eval: true, workerData: {file, everyMs, busyMs: CHECKPOINT_BUSY_MS, restartFrames, sqlite: require.resolve('better-sqlite3')}})
  worker.unref()
  db.pragma('wal_autocheckpoint = 0')
  let exited = false
  const gone = new Promise<void>(resolve => worker.once('exit', () => {
    exited = true
    resolve()
  }))
  worker.on('error', backToSqlite)
  return {
    stop() {
      if (!exited) {
        worker.ref() // an unref'd worker would let the event loop end (exit 13) before it has closed
        worker.postMessage('stop')
      }

      return gone
    },
  }
}
