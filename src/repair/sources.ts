/**
 * Where repair finds bytes: the volume's own history store (content-addressed:
 * a version is found by its sha256) first, then a peer holding a replica of
 * the volume, read through the Volume API. Every byte is checked against the
 * sha256 the records name before it is used: a source with other bytes is
 * reported and passed over, never trusted.
 */
import {createHash} from 'node:crypto'
import fs, {constants as C} from 'node:fs'
import {EMPTY_DIGEST, type HistoryStore} from '../history/store.js'
import {HISTORY_DIR} from '../history/view.js'
import {openQuietSync} from '../quiet-open.js'
import {sha256Hex} from '../crypto/hash.js'
import {sys} from '../volume/sys.js'
import type {Caller, Volume} from '../volume/types.js'

export type SourceName = 'history' | 'peer' | 'disk'

export interface Peer {
  /** host:port, for messages and the repair record */
  label: string
  volume: Volume
}

/** No source holds the bytes the records name; `message` says what each source had. */
export class NoSourceError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'NoSourceError'
  }
}

const READ = 1024 * 1024
const AHEAD = 8 // history chunks read ahead
const short = (h: string) => h.slice(0, 16)

/** Copies `file` into fd if its bytes hash to `digest`; the byte count, or undefined (then fd is left empty). */
function copyIfDigest(file: string, digest: string, fd: number): number | undefined {
  let src: number
  try {
    src = openQuietSync(file, C.O_RDONLY | C.O_NOFOLLOW)
  } catch {
    return undefined
  }

  try {
    if (!fs.fstatSync(src).isFile()) return undefined
    const hash = createHash('sha256')
    const buf = Buffer.allocUnsafe(READ)
    let pos = 0
    for (let n; (n = fs.readSync(src, buf, 0, READ, pos)) > 0; pos += n) {
      hash.update(buf.subarray(0, n))
      writeAll(fd, buf.subarray(0, n), pos)
    }

    if (hash.digest('hex') === digest) return pos
    fs.ftruncateSync(fd, 0)
    return undefined
  } finally {
    fs.closeSync(src)
  }
}

function writeAll(fd: number, buf: Buffer, pos: number): void {
  for (let off = 0; off < buf.length;) off += fs.writeSync(fd, buf, off, buf.length - off, pos + off)
}

export class Sources {
  constructor(private readonly history: HistoryStore | undefined, private readonly peer: Peer | undefined, private readonly caller: Caller) {}

  get peerLabel(): string | undefined {
    return this.peer?.label
  }

  /** Whether the history store has the bytes (for --dry-run; they are checked only when they are read). */
  where(digest: string): 'history' | 'empty' | undefined {
    if (digest === EMPTY_DIGEST) return 'empty'
    return this.history?.has(digest) ? 'history' : undefined
  }

  /**
   * Writes the content with this sha256 (at volume path `path` on a peer) into
   * `fd` (empty, open for writing); returns where it came from. Throws
   * NoSourceError when no source has exactly these bytes.
   */
  async content(path: string, digest: string, fd: number): Promise<{source?: SourceName; bytes: number}> {
    if (digest === EMPTY_DIGEST) return {bytes: 0}
    const tried: string[] = []
    if (this.history?.has(digest)) {
      try {
        return {source: 'history', bytes: await this.fromHistory(this.history, digest, fd)}
      } catch (error) {
        fs.ftruncateSync(fd, 0)
        tried.push(`the history store's copy is damaged (${(error as Error).message})`)
      }
    } else {
      tried.push(this.history ? 'not in the history store' : 'the volume keeps no history')
    }

    if (this.peer) {
      const got = await this.fromPeer(this.peer, path, fd)
      if (got.digest === digest) {
        // keep the version the store lacked: the next repair needs no peer for it
        if (this.history) await this.history.capture(fd, {digest, size: got.bytes}).catch(() => {})
        return {source: 'peer', bytes: got.bytes}
      }

      fs.ftruncateSync(fd, 0)
      tried.push(got.error ?? `peer ${this.peer.label} has other bytes there (sha256 ${short(got.digest)}…, ${got.bytes} bytes): not used`)
    } else {
      tried.push('no peer given (--from)')
    }

    throw new NoSourceError(`no source has the recorded content (sha256 ${short(digest)}…): ${tried.join('; ')}`)
  }

  /**
   * Writes the bytes of version `digest` into `fd` (empty, open for writing),
   * to heal the history store: from a file on disk that has exactly these
   * bytes (`local`: the backing files of the paths that recorded it, restored
   * first if repair restored them), else from the peer, through its history
   * view as of `epoch` and then its current file at `path`. Throws
   * NoSourceError when no source has them.
   */
  async version(path: string, epoch: number, digest: string, fd: number, local: string[]): Promise<{source: SourceName; bytes: number}> {
    const tried: string[] = []
    for (const file of local) {
      const got = copyIfDigest(file, digest, fd)
      if (got !== undefined) return {source: 'disk', bytes: got}
    }

    tried.push('no file on disk has these bytes')
    if (this.peer) {
      for (const at of [`/${HISTORY_DIR}/${epoch}${path}`, path]) {
        const got = await this.fromPeer(this.peer, at, fd)
        if (got.digest === digest) return {source: 'peer', bytes: got.bytes}
        fs.ftruncateSync(fd, 0)
        tried.push(got.error ?? `peer ${this.peer.label} has other bytes at ${at} (sha256 ${short(got.digest)}…)`)
      }
    } else {
      tried.push('no peer given (--from)')
    }

    throw new NoSourceError(`no source has version sha256 ${short(digest)}…: ${tried.join('; ')}`)
  }

  /**
   * Copies a stored version into fd. Reads several chunks ahead and hashes
   * the bytes once, as a whole: the caller keeps them only if they are
   * exactly the version (a damaged chunk fails the whole).
   */
  private async fromHistory(store: HistoryStore, digest: string, fd: number): Promise<number> {
    const m = store.manifest(digest)
    const whole = createHash('sha256')
    const reads: Array<Promise<Buffer> | undefined> = []
    const start = (i: number) => {
      const p = fs.promises.readFile(store.chunkPath(m.chunks[i])).catch(() => {
        throw new Error(`chunk ${i} (${short(m.chunks[i])}…) is missing from the history store`)
      })
      p.catch(() => {}) // awaited in order below
      reads[i] = p
    }

    for (let i = 0; i < Math.min(AHEAD, m.chunks.length); i++) start(i)
    let pos = 0
    for (let i = 0; i < m.chunks.length; i++) {
      const data = await reads[i]!
      reads[i] = undefined
      if (i + AHEAD < m.chunks.length) start(i + AHEAD)
      whole.update(data)
      writeAll(fd, data, pos)
      pos += data.length
    }

    if (pos !== m.size || whole.digest('hex') !== digest) {
      throw new Error(`version ${short(digest)}… does not reassemble to its digest: the history store was altered`)
    }

    return pos
  }

  private async fromPeer(peer: Peer, path: string, fd: number): Promise<{digest: string; bytes: number; error?: string}> {
    const v = peer.volume
    const hash = createHash('sha256')
    let fh: number
    try {
      fh = await v.open(path, C.O_RDONLY, this.caller)
    } catch (error) {
      return {digest: '', bytes: 0, error: `peer ${peer.label} cannot open ${path}: ${(error as Error).message}`}
    }

    let pos = 0
    try {
      const buf = Buffer.alloc(READ)
      for (;;) {
        const n = await v.read(path, fh, buf, READ, pos)
        if (n <= 0) break
        const data = buf.subarray(0, n)
        hash.update(data)
        writeAll(fd, data, pos)
        pos += n
      }
    } catch (error) {
      return {digest: '', bytes: pos, error: `peer ${peer.label}: reading ${path} failed: ${(error as Error).message}`}
    } finally {
      await v.release(path, fh).catch(() => {})
    }

    return {digest: hash.digest('hex'), bytes: pos}
  }

  /**
   * The value of xattr `name` whose sha256 is `hash`: from `local` (an entry on
   * disk that may still have it), the history store (the mount keeps every
   * value set through it) or the peer.
   */
  async xattr(path: string, name: string, hash: string, local: string[]): Promise<{value: Buffer; source: SourceName}> {
    for (const file of local) {
      try {
        const value = sys.lgetxattr(file, name)
        if (sha256Hex(value) === hash) return {value, source: 'disk'}
      } catch { /* not there */ }
    }

    const tried: string[] = []
    if (this.history?.has(hash)) {
      try {
        const parts: Buffer[] = []
        for await (const chunk of this.history.chunks(hash)) parts.push(Buffer.from(chunk))
        return {value: Buffer.concat(parts), source: 'history'}
      } catch (error) {
        tried.push(`the history store's copy is damaged (${(error as Error).message})`)
      }
    } else {
      tried.push('not in the history store')
    }

    if (this.peer) {
      try {
        const value = await this.peer.volume.getxattr(path, name)
        if (sha256Hex(value) === hash) return {value, source: 'peer'}
        tried.push(`peer ${this.peer.label} has another value (sha256 ${short(sha256Hex(value))}…): not used`)
      } catch (error) {
        tried.push(`peer ${this.peer.label}: ${(error as Error).message}`)
      }
    } else {
      tried.push('no peer given (--from)')
    }

    throw new NoSourceError(`no source has the recorded value of xattr ${name} (sha256 ${short(hash)}…): ${tried.join('; ')}`)
  }
}
