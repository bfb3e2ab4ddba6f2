/**
 * Heals one version in the history store from bytes known to be that version
 * (the caller checked their sha256 against the digest the ledger records).
 * Used by `paciofs repair` for verify's history-missing / history-tampered
 * findings; the volume is at rest.
 *
 * Every chunk file whose bytes do not hash to its name, or that is missing,
 * is written anew, and so is the manifest of a version of several chunks,
 * unless it already describes the version (a version of one chunk is its
 * chunk: store.ts). Nothing is deleted: a damaged chunk or manifest is moved to
 * `aside` first (evidence for the auditor). New files are fsync'ed, then
 * renamed into place, then their directory is fsync'ed: a crash leaves the old
 * file or the healed one. A chunk shared with other versions is healed for
 * them too.
 */
import {createHash, randomBytes} from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import {CHUNK_SIZE, EMPTY_DIGEST, HistoryStore, type Manifest} from './store.js'

export interface HealResult {
  /** chunk files written (missing or damaged before) */
  chunks: number
  manifest: boolean
  /** files moved aside, relative to the store's directory */
  aside: string[]
}

function fsyncPath(p: string): void {
  const fd = fs.openSync(p, 'r')
  try {
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

function readAt(fd: number, buf: Buffer, pos: number): number {
  let got = 0
  for (let n; got < buf.length && (n = fs.readSync(fd, buf, got, buf.length - got, pos + got)) > 0;) got += n
  return got
}

function hashOfFile(file: string): string | undefined {
  try {
    return createHash('sha256').update(fs.readFileSync(file)).digest('hex')
  } catch {
    return undefined
  }
}

const sameManifest = (a: Manifest, b: Manifest) =>
  a.v === b.v && a.digest === b.digest && a.size === b.size && a.chunkSize === b.chunkSize && a.chunks.length === b.chunks.length && a.chunks.every((c, i) => c === b.chunks[i])

export class Healer {
  constructor(private readonly store: HistoryStore, private readonly asideDir: string) {}

  /** Replaces `file` with `data` (tmp + fsync + rename + fsync of the directory), moving a present file aside first. */
  private put(file: string, data: Buffer | string, out: HealResult): void {
    const dir = path.dirname(file)
    fs.mkdirSync(dir, {recursive: true, mode: 0o700})
    if (fs.existsSync(file)) {
      const dest = path.join(this.asideDir, path.relative(this.store.dir, file))
      fs.mkdirSync(path.dirname(dest), {recursive: true, mode: 0o700})
      fs.renameSync(file, dest)
      out.aside.push(path.relative(this.store.dir, dest))
    }

    const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`
    fs.writeFileSync(tmp, data, {mode: 0o600})
    fsyncPath(tmp)
    fs.renameSync(tmp, file)
    fsyncPath(dir)
  }

  /** Heals version `digest` from `fd`, which holds exactly its bytes (checked by the caller). */
  heal(fd: number, digest: string): HealResult {
    const out: HealResult = {chunks: 0, manifest: false, aside: []}
    if (digest === EMPTY_DIGEST) return out
    const size = fs.fstatSync(fd).size
    const whole = createHash('sha256')
    const chunks: string[] = []
    const buf = Buffer.allocUnsafe(CHUNK_SIZE)
    for (let pos = 0; pos < size; pos += CHUNK_SIZE) {
      const n = readAt(fd, buf, pos)
      const data = buf.subarray(0, n)
      whole.update(data)
      const hash = createHash('sha256').update(data).digest('hex')
      chunks.push(hash)
      const file = this.store.chunkPath(hash)
      if (hashOfFile(file) !== hash) {
        this.put(file, data, out)
        out.chunks++
      }
    }

    if (whole.digest('hex') !== digest) throw new Error(`the bytes given to heal version ${digest.slice(0, 16)}… are another version`)
    const m: Manifest = {v: 1, digest, size, chunkSize: CHUNK_SIZE, chunks}
    if (HistoryStore.isImplicit(m)) return out // one chunk: it is the version, no manifest is read
    let stored: Manifest | undefined
    try {
      stored = JSON.parse(fs.readFileSync(this.store.manifestPath(digest), 'utf8')) as Manifest
    } catch { /* missing or unreadable */ }

    if (!stored || !sameManifest(stored, m)) {
      this.put(this.store.manifestPath(digest), JSON.stringify(m), out)
      out.manifest = true
    }

    return out
  }
}
