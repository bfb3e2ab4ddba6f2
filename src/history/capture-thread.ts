/**
 * Captures of large files on a worker thread (capture-worker.ts): hashing a
 * 1 GiB file twice (whole and per chunk) costs seconds of CPU, which on the
 * main thread would stall every RPC of a server (keepalive pings missed,
 * clients dropped) and every FUSE callback of a mount. One thread, started on
 * first use, takes the jobs in order (so at most one read buffer is in use);
 * it holds the process open only while a job is pending.
 */
import {Worker} from 'node:worker_threads'
import {PacioError} from '../errors.js'

export interface CaptureJob {
  id: number
  /** a descriptor of the file, open in this process (any access mode) */
  fd: number
  /** the history store's chunk directory (chunks/ab/<sha256>) */
  chunkDir: string
  chunkSize: number
  readSize: number
}

export type CaptureAnswer =
  | {id: number; ok: true; digest: string; size: number; stored: number; chunks: string[]; written: string[]}
  | {id: number; ok: false; message: string; code?: string}

export type CaptureDone = Extract<CaptureAnswer, {ok: true}>

const isTs = import.meta.url.endsWith('.ts')
const WORKER_URL = new URL(isTs ? './capture-worker.ts' : './capture-worker.js', import.meta.url)
/** The worker's garbage is a few hash objects and strings per chunk. */
const LIMITS = {maxYoungGenerationSizeMb: 4}

export class CaptureThread {
  private worker?: Worker
  private nextId = 1
  private readonly waiting = new Map<number, {resolve: (a: CaptureDone) => void; reject: (e: Error) => void}>()

  run(job: Omit<CaptureJob, 'id'>): Promise<CaptureDone> {
    const w = this.start()
    const id = this.nextId++
    return new Promise<CaptureDone>((resolve, reject) => {
      this.waiting.set(id, {resolve, reject})
      w.ref()
      w.postMessage({...job, id} satisfies CaptureJob)
    })
  }

  private start(): Worker {
    if (this.worker) return this.worker
    const w = isTs
      ? new Worker(`import('tsx/esm/api').then(t => { t.register(); return import(${JSON.stringify(WORKER_URL.href)}) })`, {eval: true, resourceLimits: LIMITS})
      : new Worker(WORKER_URL, {resourceLimits: LIMITS})
    w.on('message', (a: CaptureAnswer) => {
      const p = this.waiting.get(a.id)
      if (!p) return
      this.waiting.delete(a.id)
      if (this.waiting.size === 0) w.unref()
      if (a.ok) p.resolve(a)
      else p.reject(a.code && /^E[A-Z]+$/.test(a.code) && !a.code.startsWith('EINTERNAL') ? Object.assign(new Error(a.message), {code: a.code}) : new PacioError('EINTERNAL', a.message))
    })
    const fail = (error: Error) => {
      if (this.worker === w) this.worker = undefined
      for (const p of this.waiting.values()) p.reject(new PacioError('EINTERNAL', `history capture thread failed: ${error.message}`, {cause: error}))
      this.waiting.clear()
    }

    w.on('error', fail)
    w.on('exit', code => fail(new Error(`exited with code ${code}`)))
    w.unref()
    this.worker = w
    return w
  }

}

/** The process's one capture thread (shared by every store: one capture reads at a time). */
export const captureThread = new CaptureThread()
