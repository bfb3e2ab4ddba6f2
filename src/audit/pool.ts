/**
 * verify's worker threads (worker.ts): one per core by default. A job set is
 * posted to every worker at once with a shared counter; the workers claim
 * items from it themselves and answer in batches, so both cores stay busy
 * while the main thread checks the ledger and the journal, and the sets run
 * in the order they were submitted (the scan, then the history store).
 */
import {Worker} from 'node:worker_threads'
import type {Answer, HistoryResult, JobSet, ScanResult} from './worker.js'

const here = new URL('.', import.meta.url)
// under tsx (tests, benches) the worker is TypeScript and needs the same loader
const isTs = import.meta.url.endsWith('.ts')
const WORKER_URL = new URL(isTs ? 'worker.ts' : 'worker.js', here)

/** A worker's garbage is short-lived buffers and strings: a small young generation keeps its memory small. */
const LIMITS = {maxYoungGenerationSizeMb: 8}

interface Pending {
  left: number
  onAnswer: (idx: number[], out: Array<ScanResult | HistoryResult>, bytes: number) => void
  resolve: () => void
  reject: (e: Error) => void
}

export class WorkerPool {
  private readonly workers: Worker[]
  private readonly pending = new Map<number, Pending>()
  private nextId = 0
  private failed?: Error
  private closing?: Promise<void>

  constructor(n: number, historyDir: string) {
    this.workers = Array.from({length: n}, () => {
      const w = isTs
        ? new Worker(`import('tsx/esm/api').then(t => { t.register(); return import(${JSON.stringify(WORKER_URL.href)}) })`, {eval: true, workerData: {historyDir}, resourceLimits: LIMITS})
        : new Worker(WORKER_URL, {workerData: {historyDir}, resourceLimits: LIMITS})
      w.on('message', (a: Answer) => {
        const p = this.pending.get(a.id)
        if (!p) return
        p.onAnswer(a.idx, a.out, a.bytes)
        p.left -= a.idx.length
        if (p.left === 0) {
          this.pending.delete(a.id)
          p.resolve()
        }
      })
      w.on('error', error => this.fail(error))
      w.on('exit', code => {
        if (code !== 0) this.fail(new Error(`verify worker exited with code ${code}`))
      })
      return w
    })
  }

  private fail(error: Error): void {
    this.failed ??= error
    for (const p of this.pending.values()) p.reject(error)
    this.pending.clear()
  }

  /** Runs `items` on the pool; onAnswer gets each batch of results (indices into items). `sizes`: see JobSet. */
  run(kind: JobSet['kind'], items: string[], onAnswer: Pending['onAnswer'], sizes?: number[]): Promise<void> {
    if (this.failed) return Promise.reject(this.failed)
    if (items.length === 0) return Promise.resolve()
    const id = this.nextId++
    const set: JobSet = {id, kind, items, sizes, claim: new SharedArrayBuffer(4)}
    return new Promise((resolve, reject) => {
      this.pending.set(id, {left: items.length, onAnswer, resolve, reject})
      for (const w of this.workers) w.postMessage(set)
    })
  }

  /** Stops the workers; a set still running fails (its run() rejects) rather than waiting for ever. Closing again waits for the first close. */
  close(): Promise<void> {
    if (!this.closing) {
      this.fail(new Error('the verify worker pool was closed'))
      this.closing = Promise.all(this.workers.map(w => w.terminate())).then(() => {})
    }

    return this.closing
  }
}
