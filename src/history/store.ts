/**
 * The history store: every committed version of every file, content-addressed
 * and deduplicated, in the volume's state directory:
 *
 *   .paciofs/history/chunks/ab/<sha256>       the bytes of one chunk
 *   .paciofs/history/manifests/ab/<sha256>.json  per content digest of several chunks: size and the chunk list
 *   .paciofs/history/marks/ab/<sha256>         per digest of several chunks: the SHA-256 state after each
 *                                              chunk but the last (32 bytes each), so the digest can be
 *                                              checked on every core at once (sha256.ts); optional, unprotected
 *   .paciofs/history/pending/<id>.json        a capture that was promised but may not have finished
 *
 * Files are split into fixed-size chunks (CHUNK_SIZE), so a version that
 * differs from an earlier one in one place costs one new chunk, and a byte
 * range of a version is found without reading the rest (the mount's
 * .paciofs-history view reads at any offset). Plain files rather than SQLite:
 * chunks are immutable blobs written once (tmp + rename) and read by the mount
 * and the CLI at the same time without any lock between them; a chunk's name
 * is its hash, so a damaged or missing one is found by name.
 *
 * A version of one chunk (at most CHUNK_SIZE bytes: most documents) is that
 * chunk: its chunk's hash is its digest and its size the chunk's length, so
 * it gets no manifest (one file per version instead of two; verify reads one
 * file per stored version instead of two). The store answers its manifest
 * from the chunk (manifest(), has()); a manifest an older store wrote for
 * such a version is not read any more, the chunk decides.
 */
import {createHash, hash as hashOnce, randomBytes} from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import {PacioError} from '../errors.js'
import {openQuiet, openQuietSync} from '../quiet-open.js'
import {sys} from '../volume/sys.js'
import {MarkBlocks} from './marks.js'
import {step, type ChainState} from './sha256.js'

export const CHUNK_SIZE = 256 * 1024
const READ_SIZE = 4 * 1024 * 1024
/**
 * flush() makes this many files or more durable with one syncfs of the store's
 * file system (everything dirty on it is written, then one device cache flush)
 * rather than an fdatasync each: ext4 flushes the device's cache on every
 * fdatasync, even of a file with nothing left to write, and a 1 GiB version
 * is 4,096 chunk files (2.7 s for them here, clean, against 15 ms; an fsync
 * after a large write paid it for the version before).
 */
export const SYNCFS_MIN = 64
/**
 * ...but only while the kernel holds at most this much dirty data in all (as
 * /proc/meminfo says): syncfs writes everything dirty on the file system,
 * other programs' data too, and with more than this waiting the flush keeps
 * to the store's own files.
 */
export const SYNCFS_MAX_DIRTY = 256 * 1024 * 1024

/** Dirty and Writeback of a /proc/meminfo text, in bytes (Infinity if it does not say). */
export function dirtyBytes(meminfo: string): number {
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(meminfo)?.[1] ?? Number.NaN)
  const total = (kb('Dirty') + kb('Writeback')) * 1024
  return Number.isFinite(total) ? total : Infinity
}

function systemDirty(): number {
  try {
    return dirtyBytes(fs.readFileSync('/proc/meminfo', 'utf8'))
  } catch {
    return Infinity
  }
}
export const EMPTY_DIGEST = createHash('sha256').digest('hex')
const HEX64 = /^[0-9a-f]{64}$/
const fsp = fs.promises

export interface Manifest {
  v: 1
  digest: string // sha256 of the whole content
  size: number
  chunkSize: number
  chunks: string[] // sha256 of each chunk, in order
}

export interface CaptureResult {
  digest: string
  size: number
  /** bytes of chunks that were not in the store before */
  stored: number
  /** where a later capture of the same file, grown but unchanged below `resume.pos`, may go on from (large files only) */
  resume?: CaptureResume
}

/**
 * The whole chunks a capture stored of a file's first `pos` bytes, with the
 * hash state after each: a capture of the file after it grew (and was not
 * changed below `pos`) reads only what lies beyond, and stores the same
 * version as one from the start would. Held by the caller, opaque to it.
 */
export interface CaptureResume {
  readonly pos: number
  readonly chunks: readonly string[]
  /** the SHA-256 state after each chunk (32 bytes each) */
  readonly marks: readonly Buffer[]
}

export interface HistoryStats {
  manifests: number
  chunks: number
  /** bytes on disk: chunks and manifests */
  storedBytes: number
  /** sum of the sizes of every stored version */
  logicalBytes: number
  /** logicalBytes minus the chunk bytes actually stored */
  savedBytes: number
}

/** A problem with one stored version, found by check(). */
export interface HistoryProblem {
  kind: 'history-missing' | 'history-tampered'
  detail: string
}

/** Thrown when a stored version cannot be returned intact. */
export class HistoryError extends PacioError {
  constructor(readonly kind: HistoryProblem['kind'], message: string) {
    super(kind === 'history-missing' ? 'ECORRUPT' : 'ETAMPER', message)
    this.name = 'HistoryError'
  }
}

/** The part of the store the volume needs: capture a file's current content. */
export interface ContentCapture {
  /**
   * Reads the file open at `fd` (any access mode) from 0 to EOF, or to
   * `opts.upTo` if that comes first, and stores it.
   * `known`: the content's digest and size, when the caller already has them
   * (a file written sequentially); a version already stored is then not read again.
   */
  capture(fd: number, known?: {digest: string; size: number}, opts?: CaptureOptions): Promise<CaptureResult>
  /**
   * Notes that a capture of `digest` (at volume path `volPath`; the file's
   * first `size` bytes, if given) is owed; returns a token for done().
   */
  promise(volPath: string, digest: string, size?: number): Promise<string>
  done(token: string): Promise<void>
  /**
   * Makes every version stored so far durable (fdatasync, or one syncfs);
   * called on fsync, sync and unmount. A capture made with `syncOwn` (a
   * promised one, running in the background) syncs its own files instead.
   */
  flush(): Promise<void>
  /** Stores bytes given in memory under their sha256 (xattr values: `paciofs repair` restores them from here). */
  put(data: Buffer): Promise<CaptureResult>
}

export interface CaptureOptions {
  /** Bytes from 0 to read at most (a file still written beyond them: the version is its first upTo bytes) */
  upTo?: number
  /**
   * An earlier capture's resume point of this same file: its first
   * `from.pos` bytes are taken as they were then, not read again. Only for a
   * file the caller knows was not changed below that point since (a
   * sequential writer going on); ignored where it does not fit (the file or
   * upTo below it).
   */
  from?: CaptureResume
  /**
   * A capture promised beforehand (promise()): the files it writes are made
   * durable by the capture itself before it returns, not by the next
   * flush(). An fsync of another file then does not wait for a large
   * version still being stored in the background (its promise covers a
   * crash), and the caller's done() follows its files' durability.
   */
  syncOwn?: boolean
}

export interface PendingCapture {
  token: string
  path: string
  digest: string
  /** the version is the file's first `size` bytes (the writer may have gone on) */
  size?: number
}

/**
 * Manifests known to describe their digests, kept in memory, most recent
 * last, up to `maxChunks` chunk hashes in all (the default: 16 GiB of
 * versions, about 6 MB).
 */
export class ManifestMemo {
  private readonly map = new Map<string, Manifest>()
  private chunks = 0

  constructor(private readonly maxChunks = 65_536) {}

  get(digest: string): Manifest | undefined {
    return this.map.get(digest)
  }

  set(m: Manifest): void {
    const old = this.map.get(m.digest)
    if (old) {
      this.map.delete(m.digest)
      this.chunks -= old.chunks.length
    }

    if (m.chunks.length > this.maxChunks) return
    this.map.set(m.digest, m)
    this.chunks += m.chunks.length
    for (const [digest, v] of this.map) {
      if (this.chunks <= this.maxChunks) break
      this.map.delete(digest)
      this.chunks -= v.chunks.length
    }
  }
}

export class HistoryStore implements ContentCapture {
  readonly chunkDir: string
  readonly manifestDir: string
  readonly pendingDir: string
  readonly marksDir: string
  private readonly known = new Set<string>()
  /** digests whose manifest this store wrote or saw (a version stored: a capture of it has nothing to do) */
  private readonly versions = new Set<string>()
  /** the kernel's dirty bytes, for flush() (tests give their own) */
  private readonly systemDirty: () => number

  constructor(readonly dir: string, opts: {create?: boolean; systemDirty?: () => number} = {}) {
    this.systemDirty = opts.systemDirty ?? systemDirty
    this.chunkDir = path.join(dir, 'chunks')
    this.manifestDir = path.join(dir, 'manifests')
    this.pendingDir = path.join(dir, 'pending')
    this.marksDir = path.join(dir, 'marks')
    if (opts.create) {
      for (const d of [dir, this.chunkDir, this.manifestDir, this.pendingDir]) fs.mkdirSync(d, {recursive: true, mode: 0o700})
    }
  }

  chunkPath(hash: string): string {
    return path.join(this.chunkDir, hash.slice(0, 2), hash)
  }

  manifestPath(digest: string): string {
    return path.join(this.manifestDir, digest.slice(0, 2), `${digest}.json`)
  }

  marksPath(digest: string): string {
    return path.join(this.marksDir, digest.slice(0, 2), digest)
  }

  // ---- writing -----------------------------------------------------------

  /**
   * Writes a chunk or manifest once (beside its name, then renamed). It is not
   * fdatasync'ed here: one sync per closed file would cost more than the file
   * itself. Like the file's own bytes, a version becomes durable at the next
   * fsync of a file, sync, or unmount (flush()); until then it survives a
   * crash of the process, not a power loss.
   */
  private async writeOnce(file: string, data: Buffer | string, own?: Set<string>): Promise<void> {
    const dir = path.dirname(file)
    if (!this.dirs.has(dir)) {
      await fsp.mkdir(dir, {recursive: true, mode: 0o700})
      this.dirs.add(dir)
    }

    const tmp = `${file}.${tmpTag}${(++tmpSeq).toString(36)}.tmp` // unique without a call into the random source per chunk
    await fsp.writeFile(tmp, data, {mode: 0o600})
    await fsp.rename(tmp, file)
    ;(own ?? this.unsynced).add(file)
  }

  private readonly dirs = new Set<string>()
  private unsynced = new Set<string>()

  async flush(): Promise<void> {
    const files = [...this.unsynced]
    this.unsynced = new Set()
    await this.syncFiles(files).catch(error => {
      for (const f of files) this.unsynced.add(f)
      throw error
    })
  }

  /** Makes these files of the store durable. */
  private async syncFiles(files: string[]): Promise<void> {
    if (files.length >= SYNCFS_MIN && this.systemDirty() <= SYNCFS_MAX_DIRTY) {
      // one syncfs instead of an fdatasync (and a device cache flush) per file: see SYNCFS_MIN
      await sys.syncfsJob(this.dir)
      return
    }

    const syncOne = async (file: string) => {
      const fh = await fsp.open(file, 'r').catch(() => undefined)
      if (!fh) return
      try {
        await fh.datasync()
      } finally {
        await fh.close()
      }
    }

    for (let i = 0; i < files.length; i += 16) await Promise.all(files.slice(i, i + 16).map(syncOne))
  }

  private async hasChunk(hash: string): Promise<boolean> {
    if (this.known.has(hash)) return true
    try {
      await fsp.access(this.chunkPath(hash))
      this.remember(hash)
      return true
    } catch {
      return false
    }
  }

  private remember(hash: string): void {
    if (this.known.size > 1_000_000) this.known.clear()
    this.known.add(hash)
  }

  /** Stores one chunk unless a chunk with that hash is there; returns the bytes written. `hash`: its sha256, if the caller has it. */
  async putChunk(data: Buffer, hash = createHash('sha256').update(data).digest('hex')): Promise<{hash: string; stored: number}> {
    return this.putHashedChunk(hash, data)
  }

  /**
   * putChunk with the hash and the write in one job on the thread pool
   * (native storeChunkJob: one trip instead of six), for callers that store
   * many chunks as they arrive (a replica fetching versions). `copy`: the
   * same job first writes the bytes to this descriptor at this offset too.
   * `step`: the same job also takes the chunk's step of its version's hash
   * (sha256.ts' step(); `after` is then the state after it, or the digest).
   */
  async putChunkOnPool(data: Buffer, copy?: {fd: number; pos: number}, step?: {before: Buffer | null; offset: number; last: boolean}, own?: Set<string>): Promise<{hash: string; stored: number; after?: Buffer}> {
    const out = Buffer.allocUnsafe(step ? 72 : 33)
    const tag = `${tmpTag}${(++tmpSeq).toString(36)}`
    if (step) await sys.storeStepJob(data, this.chunkDir, tag, out, copy?.fd ?? -1, copy?.pos ?? 0, step.before, step.offset, step.last)
    else await sys.storeChunkJob(data, this.chunkDir, tag, out, copy?.fd ?? -1, copy?.pos ?? 0)
    const hash = out.toString('hex', 0, 32)
    if (out[32] === 1) (own ?? this.unsynced).add(this.chunkPath(hash))
    this.remember(hash)
    const stored = out[32] === 1 ? data.length : 0
    return step ? {hash, stored, after: out.subarray(40, 72)} : {hash, stored}
  }

  /** putChunk for bytes whose hash the caller computed from them. */
  private async putHashedChunk(hash: string, data: Buffer): Promise<{hash: string; stored: number}> {
    if (await this.hasChunk(hash)) return {hash, stored: 0}
    await this.writeOnce(this.chunkPath(hash), data)
    this.remember(hash)
    return {hash, stored: data.length}
  }

  /** Stores the manifest of a version this store has just hashed (its chunk list and digest come from the same bytes). */
  async putManifest(m: Manifest, own?: Set<string>): Promise<void> {
    this.vouch(m)
    if (HistoryStore.isImplicit(m)) {
      this.rememberVersion(m.digest) // the chunk (or nothing, for the empty version) is the version: no manifest
      return
    }

    const file = this.manifestPath(m.digest)
    try {
      await fsp.access(file)
      this.rememberVersion(m.digest)
      return
    } catch { /* not there yet */ }

    await this.writeOnce(file, JSON.stringify(m), own)
    this.rememberVersion(m.digest)
  }

  /**
   * Manifests this store computed from the bytes themselves (capture, put):
   * their chunk lists are known to describe their digests without reading the
   * bytes again (the file on disk may have been altered since; this copy was not).
   */
  private readonly vouched = new ManifestMemo()

  private vouch(m: Manifest): void {
    this.vouched.set(m)
  }

  /** The manifest of `digest` as this process computed it from the version's bytes, if it still remembers it. */
  vouchedManifest(digest: string): Manifest | undefined {
    return this.vouched.get(digest)
  }

  private rememberVersion(digest: string): void {
    if (this.versions.size > 1_000_000) this.versions.clear()
    this.versions.add(digest)
  }

  async capture(fd: number, known?: {digest: string; size: number}, opts: CaptureOptions = {}): Promise<CaptureResult> {
    if (known && (known.digest === EMPTY_DIGEST || this.versions.has(known.digest))) return {digest: known.digest, size: known.size, stored: 0}
    const upTo = opts.upTo ?? Infinity
    if (!(upTo >= 0)) throw new PacioError('EINTERNAL', `capture upTo ${upTo}`)
    const small = this.captureSmallSync(fd, upTo)
    if (small) return small
    const rfd = await openQuiet(`/proc/self/fd/${fd}`, fs.constants.O_RDONLY)
    try {
      const from = opts.from
      const fits = from !== undefined && resumable(from) && from.pos <= upTo && from.pos <= (await rfd.stat()).size
      return await this.captureReadable(rfd, upTo, fits ? from : undefined, opts.syncOwn === true)
    } finally {
      await rfd.close()
    }
  }

  /**
   * A file of at most one chunk (most documents) is captured with synchronous
   * local-disk calls: a few tens of microseconds each, where every thread-pool
   * round trip costs more than the work. Returns undefined for larger files.
   */
  private captureSmallSync(fd: number, upTo: number): CaptureResult | undefined {
    const size = Math.min(fs.fstatSync(fd).size, upTo)
    if (size > CHUNK_SIZE) return undefined
    const rfd = openQuietSync(`/proc/self/fd/${fd}`, fs.constants.O_RDONLY)
    let data: Buffer
    try {
      // one byte more: a file that grew meanwhile is left to the streaming path (unless it is read up to upTo only)
      data = Buffer.allocUnsafe(size === upTo ? size : size + 1)
      let got = 0
      for (let n; got < data.length && (n = fs.readSync(rfd, data, got, data.length - got, got)) > 0;) got += n
      if (got > size) return undefined
      data = data.subarray(0, got)
    } finally {
      fs.closeSync(rfd)
    }

    const digest = createHash('sha256').update(data).digest('hex')
    let stored = 0
    const chunks: string[] = []
    if (data.length > 0) {
      // a single chunk's hash is the file's digest
      if (!this.known.has(digest) && !fs.existsSync(this.chunkPath(digest))) {
        this.writeOnceSync(this.chunkPath(digest), data)
        stored = data.length
      }

      this.remember(digest)
      chunks.push(digest)
    }

    // no manifest: the chunk is the version (see the top of this file)
    this.vouch({v: 1, digest, size: data.length, chunkSize: CHUNK_SIZE, chunks})
    this.rememberVersion(digest)
    return {digest, size: data.length, stored}
  }

  private writeOnceSync(file: string, data: Buffer | string): void {
    const dir = path.dirname(file)
    if (!this.dirs.has(dir)) {
      fs.mkdirSync(dir, {recursive: true, mode: 0o700})
      this.dirs.add(dir)
    }

    const tmp = `${file}.${tmpTag}${(++tmpSeq).toString(36)}.tmp` // unique without a call into the random source per chunk
    fs.writeFileSync(tmp, data, {mode: 0o600})
    fs.renameSync(tmp, file)
    this.unsynced.add(file)
  }

  /** Stores a version given its bytes (xattr values, tests, tools). */
  async put(data: Buffer): Promise<CaptureResult> {
    const b = newBuilding()
    for (let off = 0; off < data.length; off += READ_SIZE) await this.addBytes(b, data.subarray(off, off + READ_SIZE))
    return this.finish(b)
  }

  /**
   * Reads a file of more than one chunk and stores it, reading the next
   * piece while one is hashed and stored.
   */
  private async captureReadable(fh: fs.promises.FileHandle, upTo: number, from: CaptureResume | undefined, syncOwn: boolean): Promise<CaptureResult> {
    const b = from ? resumedBuilding(from) : newBuilding()
    if (!syncOwn) return this.readInto(b, fh, upTo)
    const own = b.own = new Set<string>()
    try {
      const got = await this.readInto(b, fh, upTo)
      await this.syncFiles([...own])
      return got
    } catch (error) {
      for (const f of own) this.unsynced.add(f) // not synced here: the next flush() does
      throw error
    }
  }

  private async readInto(b: Building, fh: fs.promises.FileHandle, upTo: number): Promise<CaptureResult> {
    let buf = Buffer.allocUnsafe(READ_SIZE)
    let spare = Buffer.allocUnsafe(READ_SIZE)
    // reads end at upTo (a read of nothing there: as at EOF)
    const readAt = (into: Buffer, at: number) => (at < upTo ? fh.read(into, 0, Math.min(READ_SIZE, upTo - at), at) : Promise.resolve({bytesRead: 0}))
    let pending = readAt(buf, b.pos)
    for (;;) {
      const {bytesRead} = await pending
      if (bytesRead === 0) break
      // read ahead into the other buffer while this one is hashed and stored
      pending = readAt(spare, b.pos + bytesRead)
      await this.addBytes(b, buf.subarray(0, bytesRead))
      ;[buf, spare] = [spare, buf]
      if (bytesRead % CHUNK_SIZE !== 0) {
        // a short read that is not at EOF would misalign the chunks: only EOF may end a chunk early
        const {bytesRead: more} = await pending
        if (more === 0) break
        throw new PacioError('EINTERNAL', 'file grew while its version was being captured')
      }
    }

    const done = await this.finish(b)
    // the whole chunks (a short last one is read again next time), each with the state after it
    const whole = b.marks.length
    return {...done, resume: {pos: whole * CHUNK_SIZE, chunks: b.chunks.slice(0, whole), marks: b.marks.slice(0, whole)}}
  }

  /**
   * Hashes and stores the next bytes of a version: whole chunks, except that
   * a short last one ends it. Every hash runs on the thread pool (sha256.ts, putChunkOnPool),
   * not on the event loop: the chunks' own hashes all at once, and the
   * version's digest as a chain of steps, one per chunk, whose states
   * between chunks are kept as the version's marks.
   */
  private async addBytes(b: Building, data: Buffer): Promise<void> {
    if (b.finished) throw new PacioError('EINTERNAL', 'bytes after the short last chunk of a version')
    const pieces: Buffer[] = []
    for (let off = 0; off < data.length; off += CHUNK_SIZE) pieces.push(data.subarray(off, off + CHUNK_SIZE))
    // each chunk hashed and written (unless there) in one job on the pool, all at once: one trip per
    // chunk instead of six (hash, access, open, write, close, rename), 4,096 per GiB captured
    const hashes = pieces.map(piece => this.putChunkOnPool(piece, undefined, undefined, b.own))
    const chain = (async () => {
      for (let k = 0, at = b.pos; k < pieces.length; at += pieces[k].length, k++) {
        const short = pieces[k].length < CHUNK_SIZE
        const s = await step(pieces[k], b.state, at, short)
        if (short) b.finished = s.after
        else b.marks.push(b.state = b.markBlocks.copy(s.after))
      }
    })()
    const settled = await Promise.allSettled([chain, ...hashes])
    const failed = settled.find(r => r.status === 'rejected')
    if (failed) throw (failed as PromiseRejectedResult).reason
    for (const h of hashes) {
      const r = await h
      b.chunks.push(r.hash)
      b.stored += r.stored
    }

    b.pos += data.length
  }

  /** Finishes the digest (a version that ends with a whole chunk: from the state after it) and stores marks and manifest. */
  private async finish(b: Building): Promise<CaptureResult> {
    b.finished ??= (await step(Buffer.alloc(0), b.state, b.pos, true)).after
    const digest = b.finished.toString('hex')
    if (b.chunks.length > 1) await this.putMarks(digest, Buffer.concat(b.marks.slice(0, b.chunks.length - 1)), b.own)
    await this.putManifest({v: 1, digest, size: b.pos, chunkSize: CHUNK_SIZE, chunks: b.chunks}, b.own)
    return {digest, size: b.pos, stored: b.stored}
  }

  /**
   * Stores a version's marks (the hash states between its chunks) unless
   * there are some. Nothing vouches for them (a reader checks each step), so
   * anyone who hashed the version may store them: a capture here, a replica
   * that fetched it.
   */
  async putMarks(digest: string, marks: Buffer, own?: Set<string>): Promise<void> {
    const file = this.marksPath(digest)
    try {
      await fsp.access(file)
      return
    } catch { /* not there yet */ }

    await this.writeOnce(file, marks, own)
  }

  /**
   * A version's marks: the SHA-256 state after each of its chunks but the
   * last, 32 bytes each; undefined if there are none (a version stored
   * before marks were kept, by a capture or by a replica) or they have the
   * wrong length.
   * Nothing vouches for them: a reader checks each step (see sha256.ts).
   */
  async marks(m: Manifest): Promise<Buffer | undefined> {
    if (m.chunks.length < 2) return undefined
    try {
      const data = await fsp.readFile(this.marksPath(m.digest))
      return data.length === (m.chunks.length - 1) * 32 ? data : undefined
    } catch {
      return undefined
    }
  }

  async promise(volPath: string, digest: string, size?: number): Promise<string> {
    const token = randomBytes(8).toString('hex')
    await fsp.mkdir(this.pendingDir, {recursive: true, mode: 0o700})
    await fsp.writeFile(path.join(this.pendingDir, `${token}.json`), JSON.stringify({path: volPath, digest, size}), {mode: 0o600})
    return token
  }

  async done(token: string): Promise<void> {
    await fsp.rm(path.join(this.pendingDir, `${token}.json`), {force: true})
  }

  /** Captures promised before a crash that may not have finished. */
  pending(): PendingCapture[] {
    let names: string[]
    try {
      names = fs.readdirSync(this.pendingDir)
    } catch {
      return []
    }

    const out: PendingCapture[] = []
    for (const n of names) {
      if (!n.endsWith('.json')) continue
      try {
        const v = JSON.parse(fs.readFileSync(path.join(this.pendingDir, n), 'utf8')) as {path: string; digest: string; size?: unknown}
        const size = typeof v.size === 'number' && Number.isSafeInteger(v.size) && v.size >= 0 ? v.size : undefined
        out.push({token: n.slice(0, -5), path: v.path, digest: v.digest, ...(size === undefined ? {} : {size})})
      } catch {
        out.push({token: n.slice(0, -5), path: '', digest: ''})
      }
    }

    return out
  }

  // ---- reading -----------------------------------------------------------

  has(digest: string): boolean {
    return digest === EMPTY_DIGEST || fs.existsSync(this.chunkPath(digest)) || fs.existsSync(this.manifestPath(digest))
  }

  /**
   * Whether a manifest needs no file: the empty version, or one chunk whose
   * hash is the version's digest (the chunk's name and length say it all).
   */
  static isImplicit(m: Manifest): boolean {
    return m.chunks.length === 0 ? m.size === 0 : m.chunks.length === 1 && m.chunks[0] === m.digest && m.size > 0 && m.size <= CHUNK_SIZE
  }

  /**
   * The manifest of a version of one chunk, from the chunk named by its
   * digest (its length is the version's size); undefined if there is no such
   * chunk (a version of several chunks, or none). A chunk file of no bytes
   * or more than CHUNK_SIZE was altered (the reader's hash check would say
   * so too).
   */
  private implicitManifest(digest: string): Manifest | undefined {
    const st = fs.statSync(this.chunkPath(digest), {throwIfNoEntry: false})
    if (!st) return undefined
    if (!st.isFile() || st.size === 0 || st.size > CHUNK_SIZE) {
      throw new HistoryError('history-tampered', `chunk 0 (${digest}) of version ${digest} does not match its hash: the history store was altered`)
    }

    return {v: 1, digest, size: st.size, chunkSize: CHUNK_SIZE, chunks: [digest]}
  }

  /** The manifest of a version; HistoryError if it is absent or malformed. */
  manifest(digest: string): Manifest {
    if (!HEX64.test(digest)) throw new HistoryError('history-tampered', `not a content digest: ${JSON.stringify(digest)}`)
    if (digest === EMPTY_DIGEST) return {v: 1, digest, size: 0, chunkSize: CHUNK_SIZE, chunks: []}
    const implicit = this.implicitManifest(digest)
    if (implicit) return implicit
    let raw: string | undefined
    try {
      raw = readSmall(this.manifestPath(digest)).toString('utf8')
    } catch { /* missing */ }

    return HistoryStore.parseManifest(digest, raw)
  }

  /**
   * A manifest from the text of its file (undefined: the file could not be
   * read); HistoryError if it is absent or malformed. For a caller that reads
   * the files itself (verify reads many at once); `digest` must be a content
   * digest other than the empty one (manifest() checks that).
   */
  static parseManifest(digest: string, raw: string | undefined): Manifest {
    if (raw === undefined) throw new HistoryError('history-missing', `the history store has no version with digest ${digest}`)
    let m: Manifest
    try {
      m = JSON.parse(raw) as Manifest
    } catch {
      throw new HistoryError('history-tampered', `manifest of ${digest} is not valid JSON`)
    }

    const ok = m && m.v === 1 && m.digest === digest && Number.isSafeInteger(m.size) && m.size >= 0 && m.chunkSize === CHUNK_SIZE &&
      Array.isArray(m.chunks) && m.chunks.length === Math.ceil(m.size / CHUNK_SIZE) && m.chunks.every(c => typeof c === 'string' && HEX64.test(c))
    if (!ok) throw new HistoryError('history-tampered', `manifest of ${digest} is malformed or does not describe ${digest}`)
    // a version of one chunk is that chunk: its chunk hash is the version's digest
    if (m.chunks.length === 1 && m.chunks[0] !== digest) throw HistoryStore.notReassembled(digest)
    return m
  }

  private static notReassembled(digest: string): HistoryError {
    return new HistoryError('history-tampered', `version ${digest} does not reassemble to its digest: the history store was altered`)
  }

  /**
   * Whether the chunks of a version of several chunks, each already checked
   * against its own hash, add up to the version's digest (a manifest listing
   * other intact chunks would pass every chunk check). Synchronous, for
   * check() and verify's workers: reads every chunk again and hashes the whole.
   */
  wholeProblem(m: Manifest): HistoryProblem | undefined {
    if (m.chunks.length < 2) return undefined // none, or one whose hash is the digest (parseManifest)
    const whole = createHash('sha256')
    for (let i = 0; i < m.chunks.length; i++) {
      let data: Buffer
      try {
        data = readSmall(this.chunkPath(m.chunks[i]), HistoryStore.chunkLength(m, i))
      } catch {
        const e = HistoryStore.missingChunk(m, i)
        return {kind: e.kind, detail: e.message}
      }

      whole.update(data)
    }

    if (whole.digest('hex') === m.digest) return undefined
    const e = HistoryStore.notReassembled(m.digest)
    return {kind: e.kind, detail: e.message}
  }

  /** Length of chunk i of a manifest (only the last may be short). */
  static chunkLength(m: Manifest, i: number): number {
    return Math.min(m.chunkSize, m.size - i * m.chunkSize)
  }

  /** One chunk's bytes, checked against its hash and expected length. */
  async readChunk(m: Manifest, i: number): Promise<Buffer> {
    const hash = m.chunks[i]
    let data: Buffer
    try {
      data = await fsp.readFile(this.chunkPath(hash))
    } catch {
      throw HistoryStore.missingChunk(m, i)
    }

    return HistoryStore.checked(m, i, data)
  }

  /**
   * The bytes of a version, chunk by chunk, each checked; the whole is checked
   * against the digest at the end (throws HistoryError before the last chunk is
   * handed out if it does not match). A simple reader for small versions
   * (repair's xattr values); reader.ts reads large ones several times faster.
   */
  async * chunks(digest: string): AsyncGenerator<Buffer> {
    const m = this.manifest(digest)
    const whole = createHash('sha256')
    let next = m.chunks.length > 0 ? this.readChunk(m, 0) : undefined
    for (let i = 0; i < m.chunks.length; i++) {
      const data = await next!
      next = i + 1 < m.chunks.length ? this.readChunk(m, i + 1) : undefined
      next?.catch(() => {}) // surfaced when awaited
      whole.update(data)
      if (i === m.chunks.length - 1 && whole.digest('hex') !== digest) {
        throw HistoryStore.notReassembled(digest)
      }

      yield data
    }
  }

  /**
   * One chunk's bytes, checked, synchronously (verify's worker threads check
   * many small versions: no thread-pool round trips; reader.ts has the
   * asynchronous reads). The bytes are only valid until the next call: they
   * are not copied.
   */
  private readChunkSync(m: Manifest, i: number): Buffer {
    const hash = m.chunks[i]
    let data: Buffer
    try {
      data = readSmall(this.chunkPath(hash), HistoryStore.chunkLength(m, i))
    } catch {
      throw HistoryStore.missingChunk(m, i)
    }

    return HistoryStore.checked(m, i, data)
  }

  /** What is wrong with chunk i of a version whose bytes a caller read itself (undefined: could not be read), if anything. */
  static chunkProblem(m: Manifest, i: number, data: Buffer | undefined): HistoryProblem | undefined {
    try {
      if (data === undefined) throw HistoryStore.missingChunk(m, i)
      HistoryStore.checked(m, i, data)
      return undefined
    } catch (error) {
      if (!(error instanceof HistoryError)) throw error
      return {kind: error.kind, detail: error.message}
    }
  }

  private static missingChunk(m: Manifest, i: number): HistoryError {
    return new HistoryError('history-missing', `chunk ${i} (${m.chunks[i]}) of version ${m.digest} is missing from the history store`)
  }

  /** A chunk's bytes if they have its length and hash; HistoryError otherwise. */
  private static checked(m: Manifest, i: number, data: Buffer): Buffer {
    const hash = m.chunks[i]
    if (data.length !== HistoryStore.chunkLength(m, i) || hashOnce('sha256', data, 'hex') !== hash) {
      throw new HistoryError('history-tampered', `chunk ${i} (${hash}) of version ${m.digest} does not match its hash: the history store was altered`)
    }

    return data
  }

  /**
   * Checks a version without returning it: its manifest and each chunk not
   * already in `checked`. Synchronous (verify's worker threads check many
   * small versions: no thread-pool round trips).
   */
  check(digest: string, checked: Map<string, HistoryProblem | null> = new Map()): HistoryProblem | undefined {
    let m: Manifest
    try {
      m = this.manifest(digest)
    } catch (error) {
      if (error instanceof HistoryError) return {kind: error.kind, detail: error.message}
      throw error
    }

    for (let i = 0; i < m.chunks.length; i++) {
      const key = `${m.chunks[i]}:${HistoryStore.chunkLength(m, i)}`
      if (!checked.has(key)) {
        try {
          this.readChunkSync(m, i)
          checked.set(key, null)
        } catch (error) {
          if (!(error instanceof HistoryError)) throw error
          checked.set(key, {kind: error.kind, detail: error.message})
        }
      }

      const problem = checked.get(key)
      if (problem) return problem
    }

    return this.wholeProblem(m)
  }

  // ---- accounting --------------------------------------------------------

  /**
   * `manifests` counts the versions: those with a manifest, and every chunk
   * no manifest names (a version of one chunk; also a chunk a crash left
   * behind before its version's manifest was written; a version of one chunk
   * that is also a chunk of a larger version is not counted on its own).
   */
  stats(): HistoryStats {
    const s: HistoryStats = {manifests: 0, chunks: 0, storedBytes: 0, logicalBytes: 0, savedBytes: 0}
    const chunkSizes = new Map<string, number>()
    for (const sub of safeReaddir(this.chunkDir)) {
      for (const name of safeReaddir(path.join(this.chunkDir, sub))) {
        if (name.endsWith('.tmp')) continue
        chunkSizes.set(name, fs.statSync(path.join(this.chunkDir, sub, name)).size)
      }
    }

    let chunkBytes = 0
    for (const size of chunkSizes.values()) chunkBytes += size
    s.chunks = chunkSizes.size
    s.storedBytes = chunkBytes
    const alone = new Set(chunkSizes.keys()) // chunks that are versions of their own
    for (const sub of safeReaddir(this.manifestDir)) {
      for (const name of safeReaddir(path.join(this.manifestDir, sub))) {
        if (!name.endsWith('.json')) continue
        const file = path.join(this.manifestDir, sub, name)
        s.storedBytes += fs.statSync(file).size
        s.manifests++
        let m: Manifest
        try {
          m = JSON.parse(fs.readFileSync(file, 'utf8')) as Manifest
        } catch {
          continue // a damaged manifest is verify's business
        }

        s.logicalBytes += m.size
        if (Array.isArray(m.chunks)) for (const c of m.chunks) alone.delete(c)
      }
    }

    for (const c of alone) {
      s.manifests++
      s.logicalBytes += chunkSizes.get(c)!
    }

    for (const sub of safeReaddir(this.marksDir)) {
      for (const name of safeReaddir(path.join(this.marksDir, sub))) {
        if (!name.endsWith('.tmp')) s.storedBytes += fs.statSync(path.join(this.marksDir, sub, name)).size
      }
    }

    s.savedBytes = Math.max(0, s.logicalBytes - chunkBytes)
    return s
  }
}

/** A version being stored by addBytes and finish. */
interface Building {
  chunks: string[]
  /** the hash state after each whole chunk so far */
  marks: Buffer[]
  /** where the marks are copied to (not Node's shared Buffer pool: see marks.ts) */
  markBlocks: MarkBlocks
  state: ChainState
  /** the digest, once a short chunk ended the version */
  finished?: Buffer
  pos: number
  stored: number
  /** the files this version wrote, where its capture syncs them itself (CaptureOptions.syncOwn) */
  own?: Set<string>
}

const newBuilding = (): Building => ({chunks: [], marks: [], markBlocks: new MarkBlocks(), state: null, pos: 0, stored: 0})

/** A resume point that is what captureReadable hands out: whole chunks, one mark each. */
function resumable(r: CaptureResume): boolean {
  return r.pos > 0 && r.pos === r.chunks.length * CHUNK_SIZE && r.marks.length === r.chunks.length && r.marks.every(m => m.length === 32)
}

/** A building that goes on after a resume point's chunks (its stored bytes count only what is new). */
function resumedBuilding(r: CaptureResume): Building {
  return {chunks: [...r.chunks], marks: [...r.marks], markBlocks: new MarkBlocks(), state: r.marks.at(-1)!, pos: r.pos, stored: 0}
}

let scratch = Buffer.allocUnsafe(CHUNK_SIZE + 1)
/** temporary names of synchronous writes: this process's random tag and a counter */
const tmpTag = randomBytes(6).toString('hex')
let tmpSeq = 0

/**
 * A small file's bytes with open, read and close only (readFileSync also
 * fstats, and every system call counts when verify checks 100,000 versions).
 * `expect` is the size it should have: one read of one byte more tells
 * whether it has exactly that many. Returns a view of a shared buffer, valid
 * until the next call (no garbage per file).
 */
function readSmall(file: string, expect?: number): Buffer {
  const fd = fs.openSync(file, 'r')
  try {
    let got = 0
    for (;;) {
      if (got === scratch.length) {
        const bigger = Buffer.allocUnsafe(scratch.length * 2)
        scratch.copy(bigger)
        scratch = bigger
      }

      const want = expect === undefined ? scratch.length - got : Math.min(scratch.length, expect + 1) - got
      const n = fs.readSync(fd, scratch, got, want, null)
      got += n
      if (n < want || n === 0) break // a short read of a regular file: its end
    }

    return scratch.subarray(0, got)
  } finally {
    fs.closeSync(fd)
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir)
  } catch {
    return []
  }
}
