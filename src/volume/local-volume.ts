/**
 * The local Volume: operations on a backing directory, each state change
 * recorded before the operation returns. The FUSE adapter (or an RPC server)
 * sits above; the recorder, broadcast and ledger below.
 */
import {sha256Hex} from '../crypto/hash.js'
import fs, {constants as C, type BigIntStats, type StatsFs} from 'node:fs'
import {promisify} from 'node:util'
import {EMPTY_DIGEST, InodeContent, digestFd} from './content.js'
import type {ContentCapture} from '../history/store.js'
import {openQuietSync} from '../quiet-open.js'
import {STATE_DIR} from './layout.js'
import {actingMember} from './acting.js'
import {OpLogWriter, opLogRecord} from './oplog.js'
import {PathResolver} from './paths.js'
import type {Passthrough} from './passthrough.js'
import type {Intent, Recorder, RecordBody} from './recorder.js'
import {XATTR_CREATE, XATTR_REPLACE, sys} from './sys.js'
import type {Caller, FileType, TimeSpec, Volume} from './types.js'
import {Writeback} from './writeback.js'

const p = {
  open: promisify(fs.open),
  close: promisify(fs.close),
  fstat: (fd: number) => new Promise<BigIntStats>((resolve, reject) => fs.fstat(fd, {bigint: true}, (e, s) => e ? reject(e) : resolve(s))),
  ftruncate: promisify(fs.ftruncate),
  fsync: promisify(fs.fsync),
  fdatasync: promisify(fs.fdatasync),
}
const fsp = fs.promises
const O_ACCMODE = 3
const S_ISGID = 0o2000

interface Handle {
  fd: number
  path: string // kept current across renames, for periodic digests
  content?: InodeContent // set for handles open for writing
  append: boolean
  native?: boolean // attached to the FUSE binding's passthrough (see passthrough.ts)
  writeback?: Writeback // a sequential writer's bytes handed to the disk as they come (writes made here, not by the binding)
}

export interface LocalVolumeOptions {
  /** While a file stays open and dirty, record its digest this often (ms); 0 disables. */
  digestIntervalMs?: number
  /** Keeps every recorded version of every file (src/history); absent: no history. */
  history?: ContentCapture
  /** The op log (oplog.ts, already recovered) for creates made by the FUSE binding; its owner closes it after the volume. */
  opLog?: {fd: number; nextSeq: number}
}

/** PACIOFS_WRITEBACK=0: no early writeback of sequential writes made here (writeback.ts; for comparisons) */
const WRITEBACK = process.env.PACIOFS_WRITEBACK !== '0'
/** Files up to this size are captured before their record; larger sequentially written ones after it, in the background. */
const CAPTURE_INLINE_MAX = 8 * 1024 * 1024
/**
 * Background captures that run at once at most: each holds its read buffers
 * (8 MiB), and they share the disk and the thread pool anyway (a server whose
 * 8 clients closed 1 GiB files at once held 8 of them).
 */
const BACKGROUND_CAPTURES = 2
/**
 * The periodic digest of a file still being written (digestOpenFiles) stores
 * its version once the file's writer fsyncs or closes it, or a write or
 * truncate reaches into the version's bytes, or the volume closes, but at
 * most this long after the record: reading the file back meanwhile took the
 * CPU from the writers (8 remote clients writing 1 GiB each spent about half
 * the server's CPU in the window on such captures), and its bytes cannot
 * change before (such a change waits for the capture, and starts it).
 */
const DEFER_CAPTURE_MAX_MS = 60_000

function typeOf(mode: number): FileType {
  switch (mode & C.S_IFMT) {
    case C.S_IFDIR: return 'dir'
    case C.S_IFLNK: return 'symlink'
    case C.S_IFIFO: return 'fifo'
    case C.S_IFCHR: return 'chr'
    case C.S_IFBLK: return 'blk'
    case C.S_IFSOCK: return 'sock'
    default: return 'file'
  }
}

function errno(code: string, message: string): NodeJS.ErrnoException {
  const e = new Error(message) as NodeJS.ErrnoException
  e.code = code
  return e
}

interface Capturing {
  done: Promise<void>
  upTo: number
  /** settles once the version's record is made (or its capture failed before): the next record of the file waits for this, not for the capture */
  recorded: Promise<void>
  /** starts a deferred capture now (nothing for one under way) */
  start(): void
  /** false while deferred (see DEFER_CAPTURE_MAX_MS) */
  started: boolean
}

const timeArg = (t: TimeSpec): string => (typeof t === 'bigint' ? t.toString() : t)

export class LocalVolume implements Volume {
  readonly paths: PathResolver
  private readonly handles = new Map<number, Handle>()
  private readonly inodes = new Map<string, InodeContent>()
  private readonly digests = new Set<Promise<void>>()
  /**
   * Background captures by inode, each of the file's first `upTo` bytes: a
   * change to those bytes (a write below upTo, a truncate) waits for it; a
   * write at or beyond upTo (a sequential writer going on) does not.
   */
  private readonly capturing = new Map<string, Capturing>()
  private readonly history?: ContentCapture
  private readonly timer?: NodeJS.Timeout
  private readonly uid = process.getuid?.() ?? 0
  private readonly gid = process.getgid?.() ?? 0
  private pt?: Passthrough
  private ptWrites = true // false: the binding serves reads only (gates never open)
  private readonly opLogFile?: {fd: number; nextSeq: number}
  private fastCreates?: {onError: (error: unknown) => void}
  /** creates and unlinks logged by this volume itself (useOpLog) */
  private logged?: {writer: OpLogWriter; onError: (error: unknown) => void}

  constructor(readonly root: string, private readonly recorder: Recorder, opts: LocalVolumeOptions = {}) {
    this.paths = new PathResolver(root)
    this.history = opts.history
    this.opLogFile = opts.opLog
    const every = opts.digestIntervalMs ?? 30_000
    if (every > 0) {
      this.timer = setInterval(() => this.digestOpenFiles(), every)
      this.timer.unref()
    }
  }

  /**
   * Lets the FUSE binding serve read and write of handles opened from now on
   * on its own threads (writes only while they change nothing to record).
   */
  usePassthrough(pt: Passthrough, opts: {writes?: boolean; meta?: boolean} = {}): void {
    this.pt = pt
    this.ptWrites = opts.writes ?? true
    pt.xattrSkip(`/${STATE_DIR}`)
    pt.xattrRoot(this.root)
    // getattr/fgetattr/access/readlink are the same syscalls as below, and flush() does nothing here
    if (opts.meta ?? true) pt.meta(pt.META_ATTR | pt.META_FLUSH)
  }

  // ---- reads -------------------------------------------------------------

  // Metadata reads and changes on the backing directory are synchronous
  // local syscalls: a few microseconds each, where a round trip through
  // libuv's thread pool (and back to the event loop) costs far more. The
  // kernel asks for attributes several times per created or removed file
  // (the lookup, the parent directory's attributes after each change).

  async getattr(path: string): Promise<BigIntStats> {
    const st = fs.lstatSync(this.paths.resolve(path), {bigint: true, throwIfNoEntry: false})
    if (!st) throw errno('ENOENT', `no such file or directory: ${path}`)
    return st
  }

  async fgetattr(path: string, fh: number): Promise<BigIntStats> {
    const h = this.handles.get(fh)
    return h ? fs.fstatSync(h.fd, {bigint: true}) : this.getattr(path)
  }

  async access(path: string, mode: number): Promise<void> {
    fs.accessSync(this.paths.resolve(path), mode)
  }

  statfs(path: string): Promise<StatsFs> {
    return fsp.statfs(this.paths.resolve(path))
  }

  async readdir(path: string): Promise<string[]> {
    const names = await fsp.readdir(this.paths.resolve(path))
    return path === '/' ? names.filter(n => n !== STATE_DIR) : names
  }

  async readlink(path: string): Promise<string> {
    return fs.readlinkSync(this.paths.resolve(path))
  }

  async getxattr(path: string, name: string): Promise<Buffer> {
    return sys.lgetxattr(this.paths.resolve(path), name)
  }

  async listxattr(path: string): Promise<string[]> {
    return sys.llistxattr(this.paths.resolve(path))
  }

  // ---- file handles ------------------------------------------------------

  private inode(st: BigIntStats): InodeContent {
    const key = `${st.dev}:${st.ino}`
    let c = this.inodes.get(key)
    if (!c) {
      c = new InodeContent(key)
      this.inodes.set(key, c)
    }

    return c
  }

  private async attach(path: string, fd: number, flags: number, caller: Caller, isNew: boolean): Promise<number> {
    const writable = (flags & O_ACCMODE) !== C.O_RDONLY
    const h: Handle = {fd, path, append: (flags & C.O_APPEND) !== 0, native: this.pt !== undefined}
    try {
      if (writable) {
        const st = await p.fstat(fd)
        h.content = this.inode(st)
        h.content.openWriter(isNew || st.size === 0n, this.native(h))
        if (!isNew && (flags & C.O_TRUNC) !== 0) await this.beginWrite(path, h.content, caller)
      } else {
        this.pt?.attach(fd, fd, 0) // reads only
      }
    } catch (error) {
      this.detach(fd, h)
      throw error
    }

    this.handles.set(fd, h)
    this.openGate(fd, h)
    return fd
  }

  private native(h: Handle): {pt: Passthrough; fh: number; fd: number; append: boolean} | undefined {
    return this.pt && {pt: this.pt, fh: h.fd, fd: h.fd, append: h.append}
  }

  /** Lets the binding serve this handle's writes, if they change nothing the recorder must see first. */
  private openGate(fh: number, h: Handle): void {
    const c = h.content
    if (this.pt && this.ptWrites && h.native && c?.dirty && c.writers === 1 && !this.capturing.has(c.key)) this.pt.gate(fh, true)
  }

  /** Stops the binding using the handle's fd (call before closing it). */
  private detach(fh: number, h: Handle): void {
    if (!h.native) return
    if (h.content) h.content.dropNative(fh)
    else this.pt!.detach(fh)
  }

  async open(path: string, flags: number, caller: Caller): Promise<number> {
    if ((flags & C.O_TRUNC) !== 0 && this.capturing.size > 0) await this.captured(await fsp.stat(this.paths.resolve(path), {bigint: true}).catch(() => undefined))
    const fd = await p.open(this.paths.resolve(path), (flags & ~(C.O_CREAT | C.O_EXCL)) | C.O_NOFOLLOW)
    try {
      return await this.attach(path, fd, flags, caller, false)
    } catch (error) {
      await p.close(fd)
      throw error
    }
  }

  async create(path: string, mode: number, flags: number, caller: Caller): Promise<number> {
    if (this.logged && (flags & O_ACCMODE) !== C.O_RDONLY) return this.createLogged(path, mode, flags, caller, this.logged)
    return this.withIntent('create', path, intent => this.createNow(path, mode, flags, caller, intent))
  }

  /**
   * Logs creates of new files for writing, and unlinks, in the op log
   * (oplog.ts, as the FUSE binding does for a local mount) and answers them
   * before their records are journaled: the entry is written before the disk
   * changes, a crash's recovery journals it, and the records of several
   * operations share a journal transaction. For a volume without the binding
   * (a served one); `onError` hears of a record that could not be journaled.
   */
  useOpLog(onError: (error: unknown) => void): boolean {
    if (!this.opLogFile || this.fastCreates || this.logged) return false
    const writer = new OpLogWriter(this.opLogFile.fd, this.opLogFile.nextSeq)
    this.logged = {writer, onError}
    this.recorder.onOpLogJournaled = seq => writer.journaled(seq)
    return true
  }

  /** createNow's work with an op log entry instead of an intent, and the record journaled behind. */
  private createLogged(path: string, mode: number, flags: number, caller: Caller, log: NonNullable<LocalVolume['logged']>): number {
    const backing = this.paths.resolveNew(path)
    const own = this.ownerSync(backing, caller)
    const at = Date.now()
    const seq = log.writer.log({at, op: 'create', path, who: caller, mode: C.S_IFREG | (mode & 0o7777), uid: own.uid, gid: own.gid, flags, member: actingMember()})
    let made: {fd: number; st: BigIntStats}
    try {
      made = this.makeFile(backing, mode, flags, own)
    } catch (error) {
      log.writer.failed() // the entry is spoilt: a recovery does not journal it
      throw error
    }

    log.writer.made()
    const {fd, st} = made
    const h = this.newWriter(fd, path, flags, st)
    this.handles.set(fd, h)
    this.openGate(fd, h)
    this.recorder.record(opLogRecord('create', path, {mode: Number(st.mode), uid: own.uid, gid: own.gid}), caller, undefined, {at, opLogSeq: seq, lazy: true})
      .catch(log.onError)
    return fd
  }

  /**
   * A new backing file (O_EXCL), owned as `own`: its fd and attributes. Local
   * metadata syscalls, made synchronously: each takes microseconds. If the
   * chown or stat fails, the file is closed and removed again.
   */
  private makeFile(backing: string, mode: number, flags: number, own: {uid: number; gid: number}): {fd: number; st: BigIntStats} {
    const fd = fs.openSync(backing, flags | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, mode & 0o7777)
    try {
      if (own.uid !== this.uid || own.gid !== this.gid) fs.fchownSync(fd, own.uid, own.gid)
      return {fd, st: fs.fstatSync(fd, {bigint: true})}
    } catch (error) {
      fs.closeSync(fd)
      try {
        fs.unlinkSync(backing)
      } catch { /* the original error is what the caller needs */ }

      throw error
    }
  }

  /**
   * The handle of a new file opened for writing: it is written from its start,
   * so it is dirty from now on, and its create record says so ("writing"), so
   * that a crash before its digest shows as interrupted.
   */
  private newWriter(fd: number, path: string, flags: number, st: BigIntStats): Handle {
    const h: Handle = {fd, path, append: (flags & C.O_APPEND) !== 0, native: this.pt !== undefined}
    h.content = this.inode(st)
    h.content.openWriter(true, this.native(h))
    h.content.dirty = true
    return h
  }

  private async createNow(path: string, mode: number, flags: number, caller: Caller, intent: Intent): Promise<number> {
    const backing = this.paths.resolveNew(path)
    const own = this.ownerSync(backing, caller)
    const {fd, st} = this.makeFile(backing, mode, flags, own)
    try {
      const writable = (flags & O_ACCMODE) !== C.O_RDONLY
      let h: Handle
      if (writable) {
        h = this.newWriter(fd, path, flags, st)
      } else {
        h = {fd, path, append: (flags & C.O_APPEND) !== 0, native: this.pt !== undefined}
        this.pt?.attach(fd, fd, 0)
      }

      try {
        await this.recorder.record({op: 'create', path, type: 'file', mode: Number(st.mode), uid: own.uid, gid: own.gid, size: 0, digest: EMPTY_DIGEST,
          ...(writable ? {writing: true} : {})}, caller, intent)
      } catch (error) {
        this.detach(fd, h)
        throw error
      }

      this.handles.set(fd, h)
      this.openGate(fd, h)
      return fd
    } catch (error) {
      fs.closeSync(fd)
      throw error
    }
  }

  /**
   * Lets the binding make creates of new files for writing, and unlinks, on
   * its own threads (Passthrough.createStart): each is in the op log before it
   * is answered, and reaches adoptCreated before any later op reaches this volume.
   */
  startFastCreate(onError: (error: unknown) => void, opts: {releases?: boolean} = {}): boolean {
    const pt = this.pt
    if (!pt || !this.ptWrites || !this.opLogFile || this.fastCreates || this.logged) return false
    this.fastCreates = {onError}
    this.recorder.onOpLogJournaled = seq => pt.createConsumed(seq)
    pt.createStart(this.opLogFile.fd, this.opLogFile.nextSeq, items => this.adoptCreated(items), opts.releases ?? false)
    return true
  }

  stopFastCreate(): void {
    if (!this.fastCreates || !this.pt) return
    this.adoptCreated(this.pt.createStop())
    this.fastCreates = undefined
  }

  /**
   * Creates, unlinks and releases the binding made or answered (flat, 11
   * values each: see Passthrough.createStart). A create becomes a handle open
   * for writing, as createNow makes it; each record is journaled with its op
   * log number. A release runs here as the kernel's would have (its digest is
   * tracked before this returns, so later operations wait for it as usual).
   */
  private adoptCreated(items: Array<number | string>): void {
    const onError = this.fastCreates?.onError ?? (() => {})
    for (let i = 0; i + 11 <= items.length; i += 11) {
      const [op, seq, path, fd, , ouid, ogid, cuid, cgid, cpid, at] = items.slice(i, i + 11) as [number, number, string, number, number, number, number, number, number, number, number]
      const who = {uid: cuid, gid: cgid, pid: cpid}
      try {
        if (op === this.pt!.OP_RELEASE) {
          const pt = this.pt!
          this.release(path, fd).catch(onError).finally(() => pt.createBusy(-1))
          continue
        }

        if (op !== this.pt!.OP_CREATE) {
          this.recorder.record(opLogRecord('unlink', path), who, undefined, {at, opLogSeq: seq}).catch(onError)
          continue
        }

        const st = fs.fstatSync(fd, {bigint: true})
        const h: Handle = {fd, path, append: false, native: true}
        h.content = this.inode(st)
        h.content.openWriter(true, this.native(h), true)
        h.content.dirty = true
        this.handles.set(fd, h)
        this.openGate(fd, h)
        this.recorder.record(opLogRecord('create', path, {mode: Number(st.mode), uid: ouid, gid: ogid}), who, undefined, {at, opLogSeq: seq}).catch(onError)
      } catch (error) {
        onError(error)
      }
    }
  }

  /** Owner for a new entry: the caller, with the group of a setgid parent directory. */
  private ownerSync(backing: string, caller: Caller): {uid: number; gid: number} {
    const parent = fs.statSync(backing.slice(0, backing.lastIndexOf('/')) || '/')
    return {uid: caller.uid, gid: (parent.mode & S_ISGID) ? parent.gid : caller.gid}
  }

  private handle(fh: number): Handle {
    const h = this.handles.get(fh)
    if (!h) throw errno('EBADF', `no open file handle ${fh}`)
    return h
  }

  // Reads and writes are single pread/pwrite calls on the backing file, made
  // synchronously: on a local disk they take microseconds, less than a hop
  // through libuv's thread pool and back, and the FUSE thread waits either way.
  // Under FUSE with passthrough, the binding serves reads itself, and writes
  // whenever the handle's gate is open; these are the rest.
  async read(_path: string, fh: number, buf: Buffer, len: number, pos: number): Promise<number> {
    return fs.readSync(this.handle(fh).fd, buf, 0, len, pos)
  }

  async readOffThread(_path: string, fh: number, buf: Buffer, len: number, pos: number): Promise<number> {
    const fd = this.handle(fh).fd
    return new Promise((resolve, reject) => fs.read(fd, buf, 0, len, pos, (e, n) => e ? reject(e) : resolve(n)))
  }

  private async beginWrite(path: string, c: InodeContent, caller: Caller): Promise<void> {
    if (c.dirty) return
    c.dirty = true
    await this.recorder.record({op: 'write-begin', path}, caller)
  }

  async write(path: string, fh: number, buf: Buffer, len: number, pos: number, caller: Caller): Promise<number> {
    const h = this.handle(fh)
    path ||= h.path // an unlinked open file has no path (hard_remove)
    if (h.content && this.capturing.size > 0) await this.capturedBelow(h.content.key, h.append ? Infinity : pos)
    if (h.content && !h.content.dirty) await this.beginWrite(path, h.content, caller)
    if (h.native) {
      const n = this.pt!.write(fh, buf, len, pos) // counted and hashed by the binding
      this.openGate(fh, h)
      return n
    }

    const n = fs.writeSync(h.fd, buf, 0, len, pos)
    h.content?.wrote(pos, buf.subarray(0, n), h.append, h.fd) // a large sequential write is hashed on the pool, read back through h.fd
    if (!h.append && WRITEBACK) (h.writeback ??= new Writeback(h.fd)).wrote(pos, n) // its fsync then finds it mostly on the disk
    return n
  }

  async flush(): Promise<void> {}

  async fsync(path: string, fh: number, datasync: boolean): Promise<void> {
    const h = this.handle(fh)
    path ||= h.path
    // the binding's hasher may be behind: what it left is hashed on the pool while the disk
    // writes the data (recordDigest below then finds the digest ready)
    await Promise.all([datasync ? p.fdatasync(h.fd) : p.fsync(h.fd), h.content?.dirty ? h.content.caughtUp() : undefined])
    // a version stored in the background (captureLater) starts once this fsync has returned: it
    // reads the file, which is durable now, and its promise is; run meanwhile, it would hold up
    // the flush and the commit below on the event loop and the thread pool
    let returned!: () => void
    const after = new Promise<void>(resolve => (returned = resolve))
    try {
      if (h.content?.dirty) await this.track(this.recordDigest(path, h, h.content, after))
      await this.history?.flush() // the versions recorded so far are as durable as the file
      await this.recorder.committed()
    } finally {
      returned()
      this.startDeferredOf(h.content)
    }
  }

  async release(path: string, fh: number): Promise<void> {
    const h = this.handle(fh)
    if (path) h.path = path
    this.handles.delete(fh) // released once: close() must not release it again while its digest is taken
    try {
      const c = h.content
      if (c) {
        c.closeWriter()
        if (c.writers === 0 && c.dirty) await this.track(this.recordDigest(path, h, c))
        if (c.writers === 0 && !c.dirty) this.inodes.delete(c.key)
        if (c.writers === 0) this.startDeferredOf(c)
      }
    } finally {
      this.handles.delete(fh)
      this.detach(fh, h)
      await h.content?.idle() // its running digest's jobs read the file back through h.fd
      await h.writeback?.idle() // and a kick of the disk's writeback names it
      fs.closeSync(h.fd)
    }
  }

  /**
   * Records the file's current digest (incremental when possible, else re-read); a background capture starts after `captureAfter`
   * (`periodic`, the digest of a file still being written: its capture is deferred, see DEFER_CAPTURE_MAX_MS, except where the
   * FUSE binding writes, whose writes leave it only while no capture is owed; and it is not taken where it would re-read a large file).
   */
  private async recordDigest(path: string, h: Handle, c: InodeContent, captureAfter?: Promise<void>, periodic = false): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      await c.idle() // the running digest's writes under way
      await c.caughtUp() // what the binding's hasher left (1 MiB or more), hashed on the pool (not by incremental, inline)
      const gen = c.gen
      const st = fs.fstatSync(h.fd, {bigint: true})
      if (st.nlink === 0n) {
        c.dirty = false // unlinked while open: the unlink is the record
        return
      }

      const running = c.incremental(Number(st.size))
      // a periodic digest only where it is cheap: a large file its running digest does not cover (rewritten
      // in place, written out of order) would be read whole, and stored, every period while its writer goes on;
      // its fsync or close records it
      if (periodic && running === undefined && Number(st.size) > CAPTURE_INLINE_MAX) return
      const size = running?.size ?? Number(st.size)
      let digest = running?.digest
      const later = this.history !== undefined && digest !== undefined && size > CAPTURE_INLINE_MAX
      if (this.history && !later) digest = (await this.history.capture(h.fd, digest === undefined ? undefined : {digest, size})).digest // one pass: digest and stored version
      else if (digest === undefined) digest = (await digestFd(h.fd)).digest
      if (!c.settle(gen)) continue // written meanwhile: hash again
      c.dirty = false
      if (later) {
        await this.captureLater(path, h.fd, c, digest!, size, async () => { await this.recorder.record({op: 'write', path, size, digest}, {uid: Number(st.uid), gid: Number(st.gid), pid: 0}) }, captureAfter, periodic && !this.pt)
        return
      }

      await this.recorder.record({op: 'write', path, size, digest}, {uid: Number(st.uid), gid: Number(st.gid), pid: 0})
      return
    }
  }

  /**
   * A large file written sequentially already has its digest: record it now
   * and store the version in the background. The capture is promised in the
   * store first (a crash before it finishes is caught up on the next mount).
   * It reads the file's first `size` bytes: a change to them waits for it, a
   * write beyond them (the writer going on) does not.
   */
  private async captureLater(path: string, fd: number, c: InodeContent, digest: string, size: number, record: () => Promise<void>, after?: Promise<void>, defer = false): Promise<void> {
    const history = this.history!
    const key = c.key
    const epoch = c.epoch // now, as the gate closes: a change below upTo from here on waits for the capture or ends the epoch
    // now, from the descriptor the digest was just taken from: a release may close it while this waits below
    let rfd: number | undefined = openQuietSync(`/proc/self/fd/${fd}`, C.O_RDONLY)
    let release!: () => void
    let recorded!: () => void
    let kick!: () => void
    const kicked = new Promise<void>(resolve => (kick = resolve))
    const prior = this.capturing.get(key)
    let before = prior // until it is done: a file's gates do not hold each other in a chain
    void prior?.done.then(() => (before = undefined))
    const gate: Capturing = {
      done: new Promise<void>(resolve => (release = resolve)),
      upTo: size,
      recorded: new Promise<void>(resolve => (recorded = resolve)),
      start: () => {
        before?.start()
        gate.started = true
        kick()
      },
      started: false,
    }
    this.capturing.set(key, gate)
    // deferred only while the file has a writer, whose fsync or close starts it (startDeferredOf): a
    // periodic digest that ends after the last close would otherwise wait for the limit
    if (defer && c.writers > 0) {
      const timer = setTimeout(kick, DEFER_CAPTURE_MAX_MS)
      timer.unref()
      void kicked.then(() => clearTimeout(timer))
    } else {
      gate.start() // and the prior capture, which this one follows
    }

    try {
      if (prior) await prior.recorded // records in order; the captures follow each other below
      const token = await history.promise(path, digest, size)
      await record()
      recorded()
      const held = rfd
      rfd = undefined
      const work = Promise.all([prior?.done, after, kicked]).then(() => {
        // only the first `size` bytes: a sequential writer may already have written beyond them
        // the file is unchanged below an earlier capture's resume point of this epoch (the prior
        // capture's, say): this one reads only what was written since
        const from = c.epoch === epoch ? c.resumePoint() : undefined
        return this.inSlot(() => history.capture(held, undefined, from ? {upTo: size, from, syncOwn: true} : {upTo: size, syncOwn: true}))
      })
        .then(async got => {
          if (got.digest !== digest) return
          c.keepResume(epoch, got.resume)
          await history.done(token)
        })
        .catch(() => {}) // stays promised: caught up on the next mount
        .finally(() => {
          void p.close(held).catch(() => {})
          if (this.capturing.get(key) === gate) this.capturing.delete(key)
          release()
        })
      this.captures.add(work)
      void work.finally(() => this.captures.delete(work))
    } catch (error) {
      if (rfd !== undefined) await p.close(rfd).catch(() => {})
      recorded()
      // the prior capture may still read the bytes below its upTo: changes wait for it through this gate
      void (prior?.done ?? Promise.resolve()).then(() => {
        if (this.capturing.get(key) === gate) this.capturing.delete(key)
        release()
      })
      throw error
    }
  }

  private readonly captures = new Set<Promise<void>>()
  private slotsFree = BACKGROUND_CAPTURES
  private readonly slotWaiters: Array<() => void> = []

  /** Runs a background capture once fewer than BACKGROUND_CAPTURES run. */
  private async inSlot<T>(work: () => Promise<T>): Promise<T> {
    if (this.slotsFree > 0) this.slotsFree--
    else await new Promise<void>(resolve => this.slotWaiters.push(resolve))
    try {
      return await work()
    } finally {
      const next = this.slotWaiters.shift()
      if (next) next()
      else this.slotsFree++
    }
  }

  /** Waits for a background capture of this inode, if one runs. */
  private async captured(st: BigIntStats | undefined): Promise<void> {
    if (st) await this.captureOf(`${st.dev}:${st.ino}`)
  }

  /**
   * Starts every deferred capture: after a crash a promised version is caught
   * up from its path (history/recover.ts), which a rename or unlink may take
   * away; so the window for that stays what it was without deferral.
   */
  private startDeferred(): void {
    for (const c of this.capturing.values()) if (!c.started) c.start()
  }

  /**
   * A writer's fsync, or the last writer's close: a version the periodic
   * digest deferred is stored now. That digest may have recorded the file's
   * final bytes just before (then the fsync or close finds nothing left to
   * record, and nothing else would start it before DEFER_CAPTURE_MAX_MS).
   */
  private startDeferredOf(c: InodeContent | undefined): void {
    const gate = c && this.capturing.get(c.key)
    if (gate && !gate.started) gate.start()
  }

  /** Waits for the background capture of this inode, starting it if it was deferred. */
  private async captureOf(key: string): Promise<void> {
    const c = this.capturing.get(key)
    c?.start()
    await c?.done
  }

  /**
   * Before a write at `pos` (Infinity: an O_APPEND handle, which writes at
   * the end): waits while a background capture reads bytes the write could
   * change. The bytes a capture reads are below its upTo, and the file cannot
   * shrink meanwhile (truncates wait for it), so a write at or beyond upTo
   * goes ahead.
   */
  private async capturedBelow(key: string, pos: number): Promise<void> {
    for (let c = this.capturing.get(key); c && pos < c.upTo; c = this.capturing.get(key)) {
      c.start()
      await c.done
    }
  }

  /** Digest work in flight; namespace changes wait for it so records keep their order per path. */
  private track(work: Promise<void>): Promise<void> {
    this.digests.add(work)
    this.pt?.createBusy(1) // the binding makes no unlink meanwhile (its record would come first)
    return work.finally(() => {
      this.digests.delete(work)
      this.pt?.createBusy(-1)
    })
  }

  private async settled(): Promise<void> {
    while (this.digests.size > 0) await Promise.allSettled([...this.digests])
  }

  /**
   * A file that stays open and dirty still gets its digest recorded now and
   * then; not while the version of its last one is being stored (on a busy
   * server captures would pile up); a version whose capture is deferred is
   * followed by the next (each capture resumes from the one before).
   */
  private digestOpenFiles(): void {
    const seen = new Set<InodeContent>()
    for (const h of this.handles.values()) {
      const c = h.content
      if (!c?.dirty || c.writers === 0 || seen.has(c) || this.capturing.get(c.key)?.started) continue
      seen.add(c)
      void this.track(this.recordDigest(h.path, h, c, undefined, true)).catch(() => {})
    }
  }

  // ---- namespace and attribute changes -----------------------------------

  private async recordEntry(op: RecordBody['op'], path: string, backing: string, caller: Caller, extra: Partial<RecordBody> = {}, intent?: Intent): Promise<void> {
    const st = fs.lstatSync(backing)
    await this.recorder.record({op, path, type: typeOf(st.mode), mode: st.mode, uid: st.uid, gid: st.gid, ...extra}, caller, intent)
  }

  private chownNew(backing: string, caller: Caller): void {
    const own = this.ownerSync(backing, caller)
    if (own.uid !== this.uid || own.gid !== this.gid) fs.lchownSync(backing, own.uid, own.gid)
  }

  async truncate(path: string, size: number, caller: Caller): Promise<void> {
    const backing = this.paths.resolve(path)
    await this.settled()
    const fd = await p.open(backing, C.O_WRONLY | C.O_NOFOLLOW)
    try {
      await this.captured(await p.fstat(fd))
      await p.ftruncate(fd, size)
      const st = await p.fstat(fd)
      const open = this.inodes.get(`${st.dev}:${st.ino}`)
      if (open && open.writers > 0) {
        open.invalidate()
        await this.beginWrite(path, open, caller)
        await this.recorder.record({op: 'truncate', path, size}, caller)
      } else {
        const digest = size === 0 ? EMPTY_DIGEST : this.history ? (await this.history.capture(fd)).digest : (await digestFd(fd)).digest
        await this.recorder.record({op: 'truncate', path, size, digest}, caller)
      }
    } finally {
      await p.close(fd)
    }
  }

  async ftruncate(path: string, fh: number, size: number, caller: Caller): Promise<void> {
    const h = this.handle(fh)
    path ||= h.path
    if (h.content && this.capturing.size > 0) await this.captureOf(h.content.key)
    await p.ftruncate(h.fd, size)
    if (h.content) {
      h.content.invalidate()
      await this.beginWrite(path, h.content, caller)
      await this.recorder.record({op: 'truncate', path, size}, caller)
    } else {
      await this.truncate(path, size, caller)
    }
  }

  async mknod(path: string, mode: number, rdev: number, caller: Caller): Promise<void> {
    return this.withIntent('mknod', path, intent => this.mknodNow(path, mode, rdev, caller, intent))
  }

  private async mknodNow(path: string, mode: number, rdev: number, caller: Caller, intent: Intent): Promise<void> {
    const backing = this.paths.resolveNew(path)
    if ((mode & C.S_IFMT) === C.S_IFREG || (mode & C.S_IFMT) === 0) {
      fs.closeSync(fs.openSync(backing, C.O_CREAT | C.O_EXCL | C.O_WRONLY, mode & 0o7777))
    } else {
      sys.mknod(backing, mode, rdev)
    }

    await this.undoOnFailure(async () => {
      this.chownNew(backing, caller)
      const type = typeOf(mode)
      await this.recordEntry(type === 'file' ? 'create' : 'mknod', path, backing, caller,
        type === 'file' ? {size: 0, digest: EMPTY_DIGEST} : (type === 'chr' || type === 'blk' ? {rdev} : {}), intent)
    }, () => fs.unlinkSync(backing))
  }

  async mkdir(path: string, mode: number, caller: Caller): Promise<void> {
    return this.withIntent('mkdir', path, intent => this.mkdirNow(path, mode, caller, intent))
  }

  private async mkdirNow(path: string, mode: number, caller: Caller, intent: Intent): Promise<void> {
    const backing = this.paths.resolveNew(path)
    const parent = fs.statSync(backing.slice(0, backing.lastIndexOf('/')) || '/')
    fs.mkdirSync(backing, mode & 0o7777)
    await this.undoOnFailure(async () => {
      if (parent.mode & S_ISGID) fs.chmodSync(backing, (mode & 0o7777) | S_ISGID)
      this.chownNew(backing, caller)
      await this.recordEntry('mkdir', path, backing, caller, {}, intent)
    }, () => fs.rmdirSync(backing))
  }

  async symlink(target: string, path: string, caller: Caller): Promise<void> {
    return this.withIntent('symlink', path, intent => this.symlinkNow(target, path, caller, intent))
  }

  private async symlinkNow(target: string, path: string, caller: Caller, intent: Intent): Promise<void> {
    const backing = this.paths.resolveNew(path)
    fs.symlinkSync(target, backing)
    await this.undoOnFailure(async () => {
      this.chownNew(backing, caller)
      await this.recordEntry('symlink', path, backing, caller, {target}, intent)
    }, () => fs.unlinkSync(backing))
  }

  /**
   * Runs an operation that makes a new entry with an intent noted in the journal
   * until its record is journaled (or it failed), so that the next mount undoes
   * an entry a crash left on disk without its record (intents.ts). `work` hands
   * the intent to its record, which drops it in the same journal transaction;
   * if it never got that far, it is dropped here.
   */
  private async withIntent<T>(op: string, path: string, work: (intent: Intent) => Promise<T>): Promise<T> {
    const intent = await this.recorder.intend(op, path)
    try {
      return await work(intent)
    } finally {
      this.recorder.settleIntent(intent)
    }
  }

  private async undoOnFailure(work: () => Promise<void>, undo: () => void): Promise<void> {
    try {
      await work()
    } catch (error) {
      try {
        undo()
      } catch { /* the original error is what the caller needs */ }

      throw error
    }
  }

  async link(existing: string, path: string, caller: Caller): Promise<void> {
    await this.settled()
    fs.linkSync(this.paths.resolve(existing), this.paths.resolveNew(path))
    await this.recorder.record({op: 'link', path: existing, to: path}, caller)
  }

  async unlink(path: string, caller: Caller): Promise<void> {
    await this.settled()
    this.startDeferred()
    const backing = this.paths.resolve(path)
    const log = this.logged
    if (!log) {
      fs.unlinkSync(backing)
      await this.recorder.record({op: 'unlink', path}, caller)
      return
    }

    // as createLogged: the entry first, the record journaled behind
    const at = Date.now()
    const seq = log.writer.log({at, op: 'unlink', path, who: caller, mode: 0, uid: 0, gid: 0, flags: 0, member: actingMember()})
    try {
      fs.unlinkSync(backing)
    } catch (error) {
      log.writer.failed()
      throw error
    }

    log.writer.made()
    this.recorder.record(opLogRecord('unlink', path), caller, undefined, {at, opLogSeq: seq, lazy: true}).catch(log.onError)
  }

  async rmdir(path: string, caller: Caller): Promise<void> {
    await this.settled()
    fs.rmdirSync(this.paths.resolve(path))
    await this.recorder.record({op: 'rmdir', path}, caller)
  }

  async rename(from: string, to: string, caller: Caller): Promise<void> {
    await this.settled()
    this.startDeferred()
    fs.renameSync(this.paths.resolve(from), this.paths.resolveNew(to))
    for (const h of this.handles.values()) {
      if (h.path === from) h.path = to
      else if (h.path.startsWith(from + '/')) h.path = to + h.path.slice(from.length)
    }

    await this.recorder.record({op: 'rename', path: from, to}, caller)
  }

  /** All xattrs of an entry as name -> sha256 of the value: the state after chmod and xattr changes (ACLs and mode move together). */
  private xattrState(backing: string): Record<string, string> {
    const out: Record<string, string> = {}
    for (const name of sys.llistxattr(backing).sort()) {
      try {
        out[name] = sha256Hex(sys.lgetxattr(backing, name))
      } catch { /* removed meanwhile */ }
    }

    return out
  }

  async chmod(path: string, mode: number, caller: Caller): Promise<void> {
    const backing = this.paths.resolve(path)
    fs.chmodSync(backing, mode & 0o7777)
    const st = fs.lstatSync(backing)
    await this.recorder.record({op: 'chmod', path, mode: st.mode, xattrs: this.xattrState(backing)}, caller)
  }

  async chown(path: string, uid: number, gid: number, caller: Caller): Promise<void> {
    const backing = this.paths.resolve(path)
    const keep = (v: number) => (v === -1 || v === 0xFFFFFFFF ? -1 : v)
    fs.lchownSync(backing, keep(uid), keep(gid))
    const st = fs.lstatSync(backing)
    await this.recorder.record({op: 'chown', path, uid: st.uid, gid: st.gid, mode: st.mode}, caller)
  }

  async utimens(path: string, atime: TimeSpec, mtime: TimeSpec, caller: Caller): Promise<void> {
    sys.lutimensNs(this.paths.resolve(path), atime, mtime)
    await this.recorder.record({op: 'utimens', path, atime: timeArg(atime), mtime: timeArg(mtime)}, caller)
  }

  async setxattr(path: string, name: string, value: Buffer, flags: number, caller: Caller): Promise<void> {
    const backing = this.paths.resolve(path)
    // the record holds only the value's sha256: keep the bytes (first: a failure leaves nothing half done), so that repair can restore them
    await this.history?.put(value)
    sys.lsetxattr(backing, name, value, flags & (XATTR_CREATE | XATTR_REPLACE))
    const st = fs.lstatSync(backing)
    await this.recorder.record({op: 'setxattr', path, name, value: sha256Hex(value), mode: st.mode, xattrs: this.xattrState(backing)}, caller)
  }

  async removexattr(path: string, name: string, caller: Caller): Promise<void> {
    const backing = this.paths.resolve(path)
    sys.lremovexattr(backing, name)
    const st = fs.lstatSync(backing)
    await this.recorder.record({op: 'removexattr', path, name, mode: st.mode, xattrs: this.xattrState(backing)}, caller)
  }

  // ---- lifecycle ---------------------------------------------------------

  async sync(): Promise<void> {
    await this.settled()
    await this.history?.flush()
    await this.recorder.committed()
  }

  async close(): Promise<void> {
    this.stopFastCreate()
    if (this.timer) clearInterval(this.timer)
    for (const [fh, h] of this.handles) await this.release(h.path, fh).catch(() => {})
    await this.sync()
    this.startDeferred() // the volume is going away
    while (this.captures.size > 0) await Promise.allSettled([...this.captures])
    await this.history?.flush()
  }
}
