/**
 * Versions a replica fetches, written once from the bytes as they arrive:
 * each chunk into the history store and the whole, in order, into a staging
 * file (.paciofs/incoming/<digest>), with the whole hashed on the way (each
 * chunk hashed and stored in one job on the thread pool). Only a
 * version whose bytes have its size and hash to its digest gets a manifest and
 * is staged. Installing a staged version into the backing directory is then a
 * rename (a file that does not exist yet, when no later record needs the same
 * version; a file that exists and has no other links lends it its owner,
 * mode and xattrs first) or else an in-kernel copy (the file keeps its inode)
 * — the bytes are not read or hashed a second time.
 */
import fs from 'node:fs'
import {constants as C} from 'node:fs'
import path from 'node:path'
import {stepNow, type ChainState} from '../history/sha256.js'
import {CHUNK_SIZE, type HistoryStore} from '../history/store.js'
import {sys} from '../volume/sys.js'

export class Incoming {
  /** staged versions: digest -> staging file */
  private readonly staged = new Map<string, string>()
  /** records still to be applied that name a digest */
  private readonly refs = new Map<string, number>()
  private seq = 0

  constructor(readonly dir: string, readonly history: HistoryStore) {}

  /** Empties the staging directory (what a killed process left there is not trusted). */
  reset(): void {
    fs.rmSync(this.dir, {recursive: true, force: true})
    fs.mkdirSync(this.dir, {recursive: true, mode: 0o700})
    this.staged.clear()
    this.refs.clear()
  }

  /** A sink for the bytes of version `digest` of `size` bytes, as a peer sends them. */
  receive(digest: string, size: number): VersionSink {
    return new VersionSink(this, digest, size, path.join(this.dir, `${digest}.${++this.seq}.part`))
  }

  /** Called by a sink whose bytes matched: the staging file now holds exactly that version. */
  stage(digest: string, file: string): void {
    const old = this.staged.get(digest)
    if (old && old !== file) fs.rmSync(old, {force: true})
    this.staged.set(digest, file)
  }

  isStaged(digest: string): boolean {
    return this.staged.has(digest)
  }

  /** A record to be applied names this version. */
  want(digest: string): void {
    this.refs.set(digest, (this.refs.get(digest) ?? 0) + 1)
  }

  /** A record that named this version was applied (or given up); the last one removes its staging file. */
  release(digest: string): void {
    const n = (this.refs.get(digest) ?? 0) - 1
    if (n > 0) {
      this.refs.set(digest, n)
      return
    }

    this.refs.delete(digest)
    const file = this.staged.get(digest)
    if (file) {
      this.staged.delete(digest)
      fs.rmSync(file, {force: true})
    }
  }

  /** Forgets every staged version and every want (the records that wanted them will be prepared again). */
  discard(): void {
    for (const file of this.staged.values()) fs.rmSync(file, {force: true})
    this.staged.clear()
    this.refs.clear()
  }

  /**
   * Writes staged version `digest` into backing file `file`; false if it is
   * not staged (the caller reads it from the history store) or `file` is not
   * a regular file (the caller's own write reports what is wrong).
   */
  install(file: string, digest: string): boolean {
    const staged = this.staged.get(digest)
    if (!staged) return false
    let st: fs.Stats | undefined
    try {
      st = fs.lstatSync(file)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    }

    if (st && !st.isFile()) return false
    const last = (this.refs.get(digest) ?? 0) <= 1
    if (last && (!st || (st.nlink === 1 && this.lend(file, st, staged)))) {
      // no old file: mode 0600 and this process's owner, until the record's owner() sets them
      fs.renameSync(staged, file)
      this.staged.delete(digest)
      return true
    }

    // copyFile keeps the destination's inode (O_TRUNC, then copy_file_range) but gives it the source's mode
    try {
      fs.chmodSync(staged, st ? st.mode & 0o7777 : 0o600)
      fs.copyFileSync(staged, file)
    } catch {
      return false // e.g. a mode this process cannot read the staged copy with: written from the history store
    }

    return true
  }

  /** Gives the staged file the owner, mode and xattrs of the file it is to replace; false if that fails (then it is copied in). */
  private lend(file: string, st: fs.Stats, staged: string): boolean {
    try {
      fs.chownSync(staged, st.uid, st.gid)
      fs.chmodSync(staged, st.mode & 0o7777)
      for (const name of sys.llistxattr(file)) sys.lsetxattr(staged, name, sys.lgetxattr(file, name), 0)
      return true
    } catch {
      for (const name of sys.llistxattr(staged)) sys.lremovexattr(staged, name)
      return false
    }
  }
}

/** Bytes of one version being written at once, at most, before push() callers wait (room()). */
const IN_FLIGHT = 16 * 1024 * 1024

/**
 * One version on its way in. push() takes the bytes in order (and starts
 * each whole chunk's writes on the thread pool, so the disk and the network
 * overlap);
 * finish() waits for them and says what the bytes hash to; commit() then
 * writes the marks and the manifest and stages the version. A sink that is
 * not committed leaves only chunks behind, each stored under its own hash
 * (so never wrong), which the next fetch of the version finds there.
 *
 * Per chunk, two things run: the version's hash steps through it on the
 * event loop as it arrives (one pass; a chain of pool jobs, one after the
 * other, waited more on the pool than it hashed on a loaded machine), and
 * one pool job writes it into the staging file, hashes it for its name and
 * stores it (storeChunkJob). The
 * states between chunks are kept as the version's marks (sha256.ts), so
 * this replica serves the version with the digest checked on every core.
 *
 * A sender that has the version's marks sends them first (useMarks()).
 * Each chunk's step is then checked against them in its store job, on the
 * pool, on every core, instead of on the event loop: chunk i must take mark
 * i-1 (the initial state for chunk 0) to mark i, and the last chunk must
 * finish into the digest — then the bytes hash to the digest (the same
 * computation as one pass). Marks are not trusted: if any step misses, the
 * version is hashed again in one sequential pass over the staging file
 * (which computes its own marks), and only that pass decides.
 */
export class VersionSink {
  private readonly chunks: string[] = []
  /** the hash state after each whole chunk so far, in order */
  private readonly marks: Buffer[] = []
  /** the version's hash state after the bytes handed to chunk() so far */
  private state: ChainState = null
  /** bytes handed to chunk() so far */
  private hashed = 0
  /** set when a short chunk (the last) finished the digest */
  private digestBytes?: Buffer
  /** the chunk being put together from pieces that do not fall on chunk boundaries (a new buffer each: written asynchronously) */
  private buf?: Buffer
  private fill = 0
  private fd: number
  private readonly writes = new Set<Promise<void>>()
  private inflight = 0
  private failed?: unknown
  /** the sender's marks (unchecked), while no step has missed them */
  private given?: Buffer
  /** a step missed the sender's marks: the version is hashed in one pass at finish() */
  private missed = false
  /** with marks: the chunk that finishes the digest was handed to its job */
  private lastStepped = false
  received = 0

  constructor(private readonly into: Incoming, readonly digest: string, readonly size: number, private readonly file: string) {
    this.fd = fs.openSync(file, C.O_WRONLY | C.O_CREAT | C.O_TRUNC | C.O_NOFOLLOW, 0o600)
  }

  /**
   * The sender's marks for this version, before any bytes: each chunk's step
   * is then checked against them on the pool. Marks of the wrong length for
   * `size` are not used (the version is hashed as it arrives). Returns
   * whether they are used.
   */
  useMarks(marks: Buffer): boolean {
    const chunks = Math.ceil(this.size / CHUNK_SIZE)
    if (this.received > 0 || chunks < 2 || marks.length !== (chunks - 1) * 32) return false
    this.given = Buffer.from(marks)
    return true
  }

  /** Whether the sender's marks were used and every step so far reached them. */
  get checkedWithMarks(): boolean {
    return this.given !== undefined && !this.missed
  }

  /** Bytes that follow the ones pushed so far (not reused by the caller). The caller checks that they stay within `size`. */
  push(data: Buffer): void {
    if (data.length === 0) return
    this.received += data.length
    let off = 0
    if (this.buf) {
      const take = Math.min(CHUNK_SIZE - this.fill, data.length)
      data.copy(this.buf, this.fill, 0, take)
      this.fill += take
      off = take
      if (this.fill === CHUNK_SIZE) this.chunk(this.buf)
    }

    for (; off + CHUNK_SIZE <= data.length; off += CHUNK_SIZE) this.chunk(data.subarray(off, off + CHUNK_SIZE))
    if (off < data.length) {
      this.buf = Buffer.allocUnsafe(CHUNK_SIZE)
      data.copy(this.buf, 0, off)
      this.fill = data.length - off
    }
  }

  /** Waits while much is still being written (and throws if a write failed). */
  async room(): Promise<void> {
    while (this.inflight > IN_FLIGHT && this.failed === undefined) await Promise.race(this.writes)
    if (this.failed !== undefined) throw this.failed
  }

  private track(p: Promise<unknown>, bytes: number): void {
    this.inflight += bytes
    const w: Promise<void> = p.then(() => {}, error => {
      this.failed ??= error
    }).finally(() => {
      this.inflight -= bytes
      this.writes.delete(w)
    })
    this.writes.add(w)
  }

  /** A whole chunk, or the short last one: a step of the version's hash; on the pool, written into the staging file and stored under its own hash (one job). */
  private chunk(data: Buffer): void {
    if (this.given) {
      this.chunkWithMarks(data, this.given)
      return
    }

    const last = data.length < CHUNK_SIZE
    const at = this.hashed
    const after = stepNow(data, this.state, at, last)
    this.hashed += data.length
    if (last) {
      this.digestBytes = after // push() never makes a short chunk: nothing follows it
    } else {
      this.marks.push(after)
      this.state = after
    }

    const index = this.chunks.length
    this.chunks.push('')
    this.track(this.into.history.putChunkOnPool(data, {fd: this.fd, pos: at}).then(r => {
      this.chunks[index] = r.hash
    }), data.length)
    this.buf = undefined
    this.fill = 0
  }

  /** chunk() with the sender's marks: its step is taken in its store job and compared with its mark when that is done. */
  private chunkWithMarks(data: Buffer, marks: Buffer): void {
    const at = this.hashed
    const index = this.chunks.length
    const last = at + data.length >= this.size
    const before = index === 0 ? null : marks.subarray((index - 1) * 32, index * 32)
    const want = last ? Buffer.from(this.digest, 'hex') : marks.subarray(index * 32, (index + 1) * 32)
    this.hashed += data.length
    if (!last) this.marks.push(want)
    this.chunks.push('')
    // a short chunk that is not the last (the sender stopped early) has no step: the pass at finish() says what it was
    const short = !last && data.length < CHUNK_SIZE
    if (short) this.missed = true
    this.track(this.into.history.putChunkOnPool(data, {fd: this.fd, pos: at}, short ? undefined : {before, offset: at, last}).then(r => {
      this.chunks[index] = r.hash
      if (!short && !r.after!.equals(want)) this.missed = true
    }), data.length)
    if (last) this.lastStepped = true
    this.buf = undefined
    this.fill = 0
  }

  /**
   * The sequential pass over the staging file when a step missed the
   * sender's marks: the digest the bytes hash to, and their own marks.
   */
  private async hashStaged(): Promise<string> {
    const buf = Buffer.allocUnsafe(CHUNK_SIZE)
    const fh = await fs.promises.open(this.file, C.O_RDONLY | C.O_NOFOLLOW)
    this.marks.length = 0
    let state: ChainState = null
    let digest: Buffer | undefined
    try {
      for (let at = 0; ; at += CHUNK_SIZE) {
        let got = 0
        while (got < CHUNK_SIZE) {
          const {bytesRead} = await fh.read(buf, got, CHUNK_SIZE - got, at + got)
          if (bytesRead === 0) break
          got += bytesRead
        }

        const last = at + got >= this.hashed
        const after = stepNow(buf.subarray(0, got), state, at, last)
        if (last) {
          digest = after
          break
        }

        this.marks.push(state = after)
      }
    } finally {
      await fh.close()
    }

    return digest!.toString('hex')
  }

  /** The digest of what was pushed, once every byte is written (the last, short chunk is stored now). */
  async finish(): Promise<string> {
    if (this.buf) this.chunk(this.buf.subarray(0, this.fill))
    await Promise.all(this.writes)
    if (this.failed !== undefined) throw this.failed
    fs.closeSync(this.fd)
    this.fd = -1
    if (this.given) {
      // every step reached its mark and the last one the digest: the bytes hash to it
      if (!this.missed && this.lastStepped && this.hashed === this.size) return this.digest
      return this.hashStaged()
    }

    // a version that ends with a whole chunk (or has no bytes): finished from the state after it
    this.digestBytes ??= stepNow(Buffer.alloc(0), this.state, this.hashed, true)
    return this.digestBytes.toString('hex')
  }

  /** After finish() returned the digest and `received` is the size: the marks and the manifest are written and the version staged. */
  async commit(): Promise<void> {
    const {history} = this.into
    if (this.chunks.length > 1) await history.putMarks(this.digest, Buffer.concat(this.marks.slice(0, this.chunks.length - 1)))
    await history.putManifest({v: 1, digest: this.digest, size: this.size, chunkSize: CHUNK_SIZE, chunks: this.chunks})
    this.into.stage(this.digest, this.file)
  }

  /** Drops what was received into the staging file (after the writes under way are done). */
  async abort(): Promise<void> {
    await Promise.all(this.writes)
    if (this.fd >= 0) fs.closeSync(this.fd)
    this.fd = -1
    fs.rmSync(this.file, {force: true})
  }
}
