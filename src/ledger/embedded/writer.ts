/**
 * The embedded ledger's writer: owns the write connection and commits one
 * batch at a time. Two interchangeable placements behind one async interface:
 * - 'worker' (default): SQLite writes, hashing, signing and the fsync run in a
 *   worker thread, so the event loop is not blocked while a block commits;
 * - 'inline': the same work on the calling thread (simpler; the event loop
 *   stalls for the whole commit including the fsync).
 */
import {existsSync} from 'node:fs'
import {createRequire} from 'node:module'
import {pathToFileURL} from 'node:url'
import {Worker} from 'node:worker_threads'
import type {Identity} from '../../crypto/sign.js'
import {PacioError} from '../../errors.js'
import {LedgerStore, batchTxids, expandOutcome, type CommitOutcome, type HeadInfo, type StoredBatch} from './store.js'
import {packBatch, reviveError, type FlatError} from './wire.js'

export type WriterPlacement = 'worker' | 'inline'

export interface WriterOptions {
  file: string
  ledgerId: string
  identity: Identity
  tailBlocks?: number
}

export interface LedgerWriter {
  /** How many commit() calls may wait at once (default 1); answers come in call order. */
  readonly maxInFlight?: number
  /** Opens (creating if missing) and validates; resolves with the head. */
  open(): Promise<HeadInfo>
  /** `ids`: the payloads' txids (store.ts batchTxids), hashed by the caller off the writer's critical path */
  commit(payloads: Buffer[], now: number, ids?: Buffer): Promise<CommitOutcome>
  close(): Promise<void>
  /** See WorkerWriter.hostCheckpoints; absent where there is no thread to host them. */
  hostCheckpoints?(file: string, everyMs: number, onLost: () => void): Promise<HostedCheckpoints>
}

/** WAL checkpoints of another SQLite file, run on the ledger writer's thread. */
export interface HostedCheckpoints {
  /** One last checkpoint, then the thread closes its connection to the file. */
  stop(): Promise<void>
}

export class InlineWriter implements LedgerWriter {
  private store?: LedgerStore
  constructor(private readonly opts: WriterOptions) {}

  async open(): Promise<HeadInfo> {
    this.store = LedgerStore.openWriter(this.opts)
    return this.store.head
  }

  async commit(payloads: Buffer[], now: number, ids = batchTxids(payloads)): Promise<CommitOutcome> {
    return expandOutcome(this.store!.commit(payloads, this.opts.identity, now, ids), ids, payloads.length)
  }

  async close(): Promise<void> {
    this.store?.close()
  }
}

/** Data handed to the worker at start. The key travels as PKCS#8 DER. */
export interface WorkerInit {
  file: string
  ledgerId: string
  pkcs8: Uint8Array
  tailBlocks?: number
}

export type WorkerRequest =
  | {type: 'commit'; id: number; data: ArrayBuffer; offsets: Uint32Array; now: number}
  | {type: 'checkpoints'; file: string; everyMs: number}
  | {type: 'checkpoints-stop'; file: string}
  | {type: 'close'}

export type WorkerReply =
  | {type: 'ready'; head: HeadInfo}
  | {type: 'open-failed'; error: FlatError}
  | {type: 'done'; id: number; stored: StoredBatch}
  | {type: 'failed'; id: number; error: FlatError}
  | {type: 'checkpoints-started'; file: string}
  | {type: 'checkpoints-failed'; file: string; error: FlatError}
  | {type: 'checkpoints-stopped'; file: string}
  | {type: 'closed'}

/** URL of tsx's ESM register API (its CommonJS twin fails to register from inside a worker). */
function tsxApiUrl(): string {
  const cjs = createRequire(import.meta.url).resolve('tsx/esm/api')
  const mjs = cjs.replace(/\.cjs$/, '.mjs')
  return pathToFileURL(existsSync(mjs) ? mjs : cjs).href
}

function workerEntry(): {url: URL; viaTsx: boolean} {
  const here = import.meta.url
  const viaTsx = here.endsWith('.ts')
  return {url: new URL(viaTsx ? './writer-worker.ts' : './writer-worker.js', here), viaTsx}
}

export class WorkerWriter implements LedgerWriter {
  /** one block being fdatasync'ed while the next is written (writer-worker.ts) */
  readonly maxInFlight = 2
  private worker?: Worker
  private nextId = 1
  /** commits sent and not answered, with their txids (the thread gets them raw and answers without them) */
  private readonly waiting = new Map<number, {ids: Buffer; n: number; resolve: (o: CommitOutcome) => void; reject: (e: Error) => void}>()
  private closing?: Promise<void>
  private failure?: Error
  /** hosted checkpoint jobs by file: the reply awaited, and what to call if the thread goes away */
  private readonly hosted = new Map<string, {settle?: (error?: Error) => void; onLost: () => void}>()

  constructor(private readonly opts: WriterOptions) {}

  open(): Promise<HeadInfo> {
    const init: WorkerInit = {
      file: this.opts.file,
      ledgerId: this.opts.ledgerId,
      pkcs8: this.opts.identity.privateKey.export({format: 'der', type: 'pkcs8'}),
      tailBlocks: this.opts.tailBlocks,
    }
    const {url, viaTsx} = workerEntry()
    // Under tsx (tests, benches) the worker must register tsx's loader itself
    // before it can import a .ts module; compiled builds load the .js directly.
    this.worker = viaTsx
      ? new Worker(
          `import(${JSON.stringify(tsxApiUrl())}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}) })`,
          {eval: true, workerData: init},
        )
      : new Worker(url, {workerData: init})
    const worker = this.worker
    return new Promise<HeadInfo>((resolve, reject) => {
      let opened = false
      worker.on('message', (m: WorkerReply) => {
        switch (m.type) {
          case 'ready':
            opened = true
            resolve(m.head)
            break
          case 'open-failed':
            reject(reviveError(m.error))
            void worker.terminate()
            break
          case 'done': {
            const w = this.settle(m.id)
            w?.resolve(expandOutcome(m.stored, w.ids, w.n))
            break
          }
          case 'failed':
            this.settle(m.id)?.reject(reviveError(m.error))
            break
          case 'checkpoints-started':
          case 'checkpoints-stopped':
            this.hosted.get(m.file)?.settle?.()
            break
          case 'checkpoints-failed':
            this.hosted.get(m.file)?.settle?.(reviveError(m.error))
            break
          case 'closed':
            break
        }
      })
      worker.on('error', (error) => {
        this.failure = new PacioError('ELEDGER', `${this.opts.file}: ledger writer thread failed: ${error.message}`, {cause: error})
        if (!opened) reject(this.failure)
        this.failAll(this.failure)
      })
      worker.on('exit', () => {
        if (!opened) reject(this.failure ?? new PacioError('ELEDGER', `${this.opts.file}: ledger writer thread exited while opening`))
        this.failAll(this.failure ?? new PacioError('ELEDGER', `${this.opts.file}: ledger writer thread exited`))
        for (const job of this.hosted.values()) {
          job.settle?.()
          job.onLost()
        }
        this.hosted.clear()
      })
    })
  }

  private settle(id: number) {
    const w = this.waiting.get(id)
    this.waiting.delete(id)
    return w
  }

  private failAll(error: Error): void {
    for (const w of this.waiting.values()) w.reject(error)
    this.waiting.clear()
  }

  commit(payloads: Buffer[], now: number, ids?: Buffer): Promise<CommitOutcome> {
    if (this.failure) return Promise.reject(this.failure)
    if (!this.worker || this.closing) return Promise.reject(new PacioError('ELEDGER', `${this.opts.file}: ledger is closed`))
    const id = this.nextId++
    // The txids are hashed on this side, not on the writer's thread: that thread is
    // the ledger's bottleneck (its commits queue behind each other), this one mostly waits.
    const txids = ids ?? batchTxids(payloads)
    const {data, offsets} = packBatch(payloads, txids)
    return new Promise<CommitOutcome>((resolve, reject) => {
      this.waiting.set(id, {ids: txids, n: payloads.length, resolve, reject})
      const req: WorkerRequest = {type: 'commit', id, data, offsets, now}
      this.worker!.postMessage(req, [data])
    })
  }

  /**
   * Run PASSIVE WAL checkpoints of another SQLite file (e.g. the volume's
   * journal) every `everyMs` on this writer's thread, between its commits:
   * one thread (and V8 isolate) for both instead of two. Each checkpoint
   * delays a commit that arrives meanwhile by its duration. `onLost` is
   * called if the thread goes away before stop(): the file's own connection
   * should then checkpoint for itself again. Stop the job before close().
   */
  hostCheckpoints(file: string, everyMs: number, onLost: () => void): Promise<HostedCheckpoints> {
    const worker = this.worker
    if (!worker || this.closing || this.failure) return Promise.reject(new PacioError('ELEDGER', `${this.opts.file}: ledger writer thread is not running`))
    if (this.hosted.has(file)) return Promise.reject(new PacioError('EINPUT', `${file}: its checkpoints already run on the ledger writer thread`))
    const ask = (m: WorkerRequest) =>
      new Promise<void>((resolve, reject) => {
        const job = this.hosted.get(file)
        if (!job) return resolve()
        job.settle = (error) => {
          job.settle = undefined
          if (error) reject(error)
          else resolve()
        }
        worker.postMessage(m)
      })
    this.hosted.set(file, {onLost})
    return ask({type: 'checkpoints', file, everyMs}).then(
      () => ({
        stop: async () => {
          if (!this.hosted.has(file)) return
          await ask({type: 'checkpoints-stop', file})
          this.hosted.delete(file)
        },
      }),
      (error: Error) => {
        this.hosted.delete(file)
        throw error
      },
    )
  }

  close(): Promise<void> {
    if (this.closing) return this.closing
    const worker = this.worker
    if (!worker) return Promise.resolve()
    this.closing = new Promise<void>((resolve) => {
      worker.once('exit', () => resolve())
      worker.postMessage({type: 'close'} satisfies WorkerRequest)
    })
    return this.closing
  }
}

export function createWriter(placement: WriterPlacement, opts: WriterOptions): LedgerWriter {
  return placement === 'inline' ? new InlineWriter(opts) : new WorkerWriter(opts)
}
