/**
 * Worker-thread side of off-thread captures (capture-thread.ts): reads a file
 * open in this process (by its descriptor, through /proc/self/fd), hashes it
 * whole and per chunk, and writes the chunks the store lacks (tmp + rename,
 * like HistoryStore.writeOnce). Synchronous calls: this thread does nothing
 * else, and the event loop of the main thread (a server's RPCs, a mount's
 * FUSE callbacks) never waits for the hashing. The main thread writes the
 * manifest from the answer.
 */
import {createHash, randomBytes} from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import {parentPort} from 'node:worker_threads'
import type {CaptureJob, CaptureAnswer} from './capture-thread.js'

const port = parentPort!
const dirs = new Set<string>()
let buf: Buffer | undefined

function chunkPath(chunkDir: string, hash: string): string {
  return path.join(chunkDir, hash.slice(0, 2), hash)
}

function writeOnce(file: string, data: Buffer): void {
  const dir = path.dirname(file)
  if (!dirs.has(dir)) {
    fs.mkdirSync(dir, {recursive: true, mode: 0o700})
    dirs.add(dir)
  }

  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`
  fs.writeFileSync(tmp, data, {mode: 0o600})
  fs.renameSync(tmp, file)
}

function capture(job: CaptureJob): CaptureAnswer {
  const rfd = fs.openSync(`/proc/self/fd/${job.fd}`, fs.constants.O_RDONLY)
  try {
    buf ??= Buffer.allocUnsafe(job.readSize)
    const whole = createHash('sha256')
    const chunks: string[] = []
    const written: string[] = []
    let stored = 0
    let pos = 0
    for (;;) {
      let got = 0
      // fill the buffer (a short read before EOF would misalign the chunks)
      for (let n; got < buf.length && (n = fs.readSync(rfd, buf, got, buf.length - got, pos + got)) > 0;) got += n
      if (got === 0) break
      const data = buf.subarray(0, got)
      whole.update(data)
      for (let off = 0; off < got; off += job.chunkSize) {
        const chunk = data.subarray(off, off + job.chunkSize)
        const hash = createHash('sha256').update(chunk).digest('hex')
        chunks.push(hash)
        const file = chunkPath(job.chunkDir, hash)
        if (!fs.existsSync(file)) {
          writeOnce(file, chunk)
          written.push(file)
          stored += chunk.length
        }
      }

      pos += got
      if (got < buf.length) break // EOF
    }

    return {id: job.id, ok: true, digest: whole.digest('hex'), size: pos, stored, chunks, written}
  } finally {
    fs.closeSync(rfd)
  }
}

port.on('message', (job: CaptureJob) => {
  try {
    port.postMessage(capture(job))
  } catch (error) {
    const e = error as NodeJS.ErrnoException
    port.postMessage({id: job.id, ok: false, message: String(e?.message ?? error), code: typeof e?.code === 'string' ? e.code : undefined} satisfies CaptureAnswer)
  }
})
