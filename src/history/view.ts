/**
 * The past, read-only, through the mount: `/.paciofs-history/<epoch>/...` is
 * the whole tree as it was after every record up to that block (like ZFS's
 * .zfs/snapshot). A Volume decorator: paths below /.paciofs-history are
 * answered from the records and the history store, everything else goes to
 * the wrapped volume. Nothing there can be changed (EROFS).
 *
 * /.paciofs-history itself is not listed in the volume's root (so `cp -a`,
 * rsync and find do not descend into the past), but can be entered by name; it
 * lists the most recent epochs that hold records, and any epoch up to the
 * ledger's head can be opened by number. Each chunk is checked as it is
 * read, against a proof for the record's digest: the chunk list this mount
 * computed when it stored the version (each chunk against its hash), or else
 * a proof made by reading the whole version once when it is first opened
 * (see proveVersion: with the version's marks, each chunk by its step of the
 * digest, on every core; without, against the chunk list). A record that
 * does not match the ledger hides nothing silently: its path answers EIO.
 * Sequential reads are served from a small cache of checked chunks, loaded
 * (and hashed) ahead on the thread pool.
 */
import {createHash} from 'node:crypto'
import {constants as C, type BigIntStats, type StatsFs} from 'node:fs'
import type {ExpectedTree, Inode} from '../audit/expected.js'
import type {Caller, TimeSpec, Volume} from '../volume/types.js'
import {ManifestMemo, type HistoryStore, type Manifest} from './store.js'
import {ChunkCache, proveVersion, READ_AHEAD, type ProvenVersion} from './reader.js'
import {treeAt, type Timeline} from './timeline.js'
import type {Passthrough} from '../volume/passthrough.js'

export const HISTORY_DIR = '.paciofs-history'
const ROOT = `/${HISTORY_DIR}`
const LISTED_EPOCHS = 100
const FH_BASE = 1 << 30

function errno(code: string, message = code): NodeJS.ErrnoException {
  const e = new Error(message) as NodeJS.ErrnoException
  e.code = code
  return e
}

const erofs = () => Promise.reject(errno('EROFS', 'the history is read-only'))

interface Snapshot {
  epoch: number
  tree: ExpectedTree
  tainted: Map<string, number>
  children: Map<string, string[]>
  time: number // block time of the epoch, ms
}

interface OpenVersion {
  v: ProvenVersion
  /** the chunk after the last one read: a read there (or in the same chunk) is sequential */
  next: number
}

type Where = {kind: 'root'} | {kind: 'snap'; epoch: number; sub: string} | {kind: 'none'}

const TYPE_BITS: Record<string, number> = {file: C.S_IFREG, dir: C.S_IFDIR, symlink: C.S_IFLNK, fifo: C.S_IFIFO, chr: C.S_IFCHR, blk: C.S_IFBLK, sock: C.S_IFSOCK}

export class HistoryView implements Volume {
  private timeline?: {at: number; value: Promise<Timeline>}
  private readonly snapshots = new Map<number, Snapshot>()
  private readonly handles = new Map<number, OpenVersion>()
  /** manifests proven by reading their versions whole (the proof is this copy: the file could change) */
  private readonly proven = new ManifestMemo()
  /** the marks proven with a manifest in `proven` (kept as long as it is) */
  private readonly provenMarks = new WeakMap<Manifest, Buffer>()
  private readonly proving = new Map<string, Promise<ProvenVersion>>()
  private readonly cache: ChunkCache
  private nextFh = FH_BASE

  constructor(private readonly inner: Volume, private readonly store: HistoryStore, private readonly load: () => Promise<Timeline>,
    private readonly refreshMs = 1000) {
    this.cache = new ChunkCache(store)
  }

  /** Where a path points: null for the live volume. */
  private where(path: string): Where | null {
    if (path === ROOT) return {kind: 'root'}
    if (!path.startsWith(ROOT + '/')) return null
    const rest = path.slice(ROOT.length + 1)
    const slash = rest.indexOf('/')
    const first = slash === -1 ? rest : rest.slice(0, slash)
    if (!/^(0|[1-9]\d{0,14})$/.test(first)) return {kind: 'none'}
    return {kind: 'snap', epoch: Number(first), sub: slash === -1 ? '/' : rest.slice(slash)}
  }

  private async current(): Promise<Timeline> {
    if (!this.timeline || Date.now() - this.timeline.at > this.refreshMs) {
      const value = this.load()
      this.timeline = {at: Date.now(), value}
      value.catch(() => {
        if (this.timeline?.value === value) this.timeline = undefined
      })
    }

    return this.timeline.value
  }

  private async snapshot(epoch: number): Promise<Snapshot> {
    const cached = this.snapshots.get(epoch)
    if (cached) return cached
    const t = await this.current()
    if (epoch > t.head) throw errno('ENOENT', `epoch ${epoch} is after the head`)
    const {tree, tainted} = treeAt(t, epoch)
    const children = new Map<string, string[]>([['/', []]])
    for (const p of tree.entries.keys()) {
      if (p === '/') continue
      const cut = p.lastIndexOf('/')
      const parent = cut === 0 ? '/' : p.slice(0, cut)
      let list = children.get(parent)
      if (!list) children.set(parent, list = [])
      list.push(p.slice(cut + 1))
    }

    let time = 0
    for (const e of t.entries) if (e.epoch <= epoch) time = e.time
    const snap = {epoch, tree, tainted, children, time}
    if (this.snapshots.size >= 16) this.snapshots.delete(this.snapshots.keys().next().value!)
    this.snapshots.set(epoch, snap)
    return snap
  }

  private async entry(w: Extract<Where, {kind: 'snap'}>): Promise<{snap: Snapshot; node?: Inode}> {
    const snap = await this.snapshot(w.epoch)
    if (w.sub === '/') return {snap}
    if (snap.tainted.has(w.sub)) throw errno('EIO', `${w.sub}: its record at epoch ${snap.tainted.get(w.sub)} does not match the ledger`)
    const node = snap.tree.entries.get(w.sub)
    if (!node) throw errno('ENOENT')
    return {snap, node}
  }

  private stat(ino: string, mode: number, opts: {uid?: number; gid?: number; size?: number; time: number; nlink?: number; rdev?: number}): BigIntStats {
    const ns = BigInt(opts.time) * 1_000_000n
    const size = BigInt(opts.size ?? 0)
    return {
      dev: 0n, ino: BigInt('0x' + createHash('sha256').update(ino).digest('hex').slice(0, 12)) | (1n << 60n), mode: BigInt(mode),
      nlink: BigInt(opts.nlink ?? 1), uid: BigInt(opts.uid ?? 0), gid: BigInt(opts.gid ?? 0), rdev: BigInt(opts.rdev ?? 0), size,
      blksize: 4096n, blocks: (size + 511n) / 512n, atimeNs: ns, mtimeNs: ns, ctimeNs: ns, birthtimeNs: ns,
    } as unknown as BigIntStats
  }

  private async attrs(w: Where): Promise<BigIntStats> {
    if (w.kind === 'none') throw errno('ENOENT')
    if (w.kind === 'root') return this.stat(ROOT, C.S_IFDIR | 0o555, {time: Date.now(), nlink: 2})
    const {snap, node} = await this.entry(w)
    if (!node) return this.stat(`${w.epoch}:/`, C.S_IFDIR | 0o555, {time: snap.time, nlink: 2})
    const bits = node.mode ?? (TYPE_BITS[node.type] ?? C.S_IFREG) | 0o444
    const mode = (bits & ~0o222) >>> 0
    const size = node.type === 'symlink' ? Buffer.byteLength(node.target ?? '') : node.type === 'dir' ? 4096 : node.size ?? 0
    return this.stat(`${w.epoch}:${w.sub}`, mode, {uid: node.uid, gid: node.gid, size, time: snap.time, rdev: node.rdev})
  }

  // ---- reads -------------------------------------------------------------

  getattr(path: string): Promise<BigIntStats> {
    const w = this.where(path)
    return w ? this.attrs(w) : this.inner.getattr(path)
  }

  fgetattr(path: string, fh: number): Promise<BigIntStats> {
    const w = this.where(path)
    return w ? this.attrs(w) : this.inner.fgetattr(path, fh)
  }

  async access(path: string, mode: number): Promise<void> {
    const w = this.where(path)
    if (!w) return this.inner.access(path, mode)
    await this.attrs(w)
    if (mode & C.W_OK) throw errno('EROFS')
  }

  statfs(path: string): Promise<StatsFs> {
    return this.inner.statfs(this.where(path) ? '/' : path)
  }

  async readdir(path: string): Promise<string[]> {
    const w = this.where(path)
    if (!w) return this.inner.readdir(path)
    if (w.kind === 'none') throw errno('ENOENT')
    if (w.kind === 'root') {
      const epochs = [...new Set((await this.current()).entries.map(e => e.epoch))]
      return epochs.slice(-LISTED_EPOCHS).map(String)
    }

    const {snap, node} = await this.entry(w)
    if (node && node.type !== 'dir') throw errno('ENOTDIR')
    return snap.children.get(w.sub) ?? []
  }

  async readlink(path: string): Promise<string> {
    const w = this.where(path)
    if (!w) return this.inner.readlink(path)
    if (w.kind !== 'snap') throw errno('EINVAL')
    const {node} = await this.entry(w)
    if (node?.type !== 'symlink') throw errno('EINVAL')
    return node.target ?? ''
  }

  async getxattr(path: string, name: string): Promise<Buffer> {
    if (!this.where(path)) return this.inner.getxattr(path, name)
    throw errno('ENODATA')
  }

  async listxattr(path: string): Promise<string[]> {
    return this.where(path) ? [] : this.inner.listxattr(path)
  }

  // ---- file handles ------------------------------------------------------

  async open(path: string, flags: number, caller: Caller): Promise<number> {
    const w = this.where(path)
    if (!w) return this.inner.open(path, flags, caller)
    if ((flags & 3) !== C.O_RDONLY || (flags & C.O_TRUNC) !== 0) throw errno('EROFS')
    if (w.kind !== 'snap') throw errno(w.kind === 'root' ? 'EISDIR' : 'ENOENT')
    const {node} = await this.entry(w)
    if (!node || node.type === 'dir') throw errno('EISDIR')
    if (node.type !== 'file') throw errno('EACCES', 'special files of the past cannot be opened')
    if (node.digest === undefined) throw errno('EIO', `${w.sub} at epoch ${w.epoch}: being written, content not recorded`)
    let v: ProvenVersion
    try {
      v = await this.provenVersion(node.digest)
    } catch (error) {
      throw errno('EIO', (error as Error).message)
    }

    const fh = this.nextFh++
    this.handles.set(fh, {v, next: 0})
    return fh
  }

  /** A version whose chunks can be checked one by one: its chunk list computed by this mount, or proven by reading it once. */
  private provenVersion(digest: string): Promise<ProvenVersion> {
    const vouched = this.store.vouchedManifest(digest)
    if (vouched) return Promise.resolve({m: vouched})
    const m = this.proven.get(digest)
    if (m) return Promise.resolve({m, marks: this.provenMarks.get(m)})
    let p = this.proving.get(digest)
    if (!p) {
      const proving = proveVersion(this.store, digest)
      this.proving.set(digest, p = proving)
      proving.then(v => {
        this.proven.set(v.m)
        if (v.marks) this.provenMarks.set(v.m, v.marks)
      }, () => {}).finally(() => this.proving.delete(digest))
    }

    return p
  }

  create(path: string, mode: number, flags: number, caller: Caller): Promise<number> {
    return this.where(path) ? erofs() : this.inner.create(path, mode, flags, caller)
  }

  /** A handle of the volume itself: read off the event loop where the volume can; a version's: as read. */
  readOffThread(path: string, fh: number, buf: Buffer, len: number, pos: number): Promise<number> {
    if (this.handles.has(fh) || !this.inner.readOffThread) return this.read(path, fh, buf, len, pos)
    return this.inner.readOffThread(path, fh, buf, len, pos)
  }

  async read(path: string, fh: number, buf: Buffer, len: number, pos: number): Promise<number> {
    const h = this.handles.get(fh)
    if (!h) return this.inner.read(path, fh, buf, len, pos)
    const {v} = h
    const {m} = v
    let done = 0
    while (done < len && pos + done < m.size) {
      const at = pos + done
      const i = Math.floor(at / m.chunkSize)
      if (i === h.next || i === h.next - 1) this.cache.prefetch(v, i + 1, i + 1 + READ_AHEAD)
      const off = at - i * m.chunkSize
      try {
        done += await this.cache.with(v, i, data => data.copy(buf, done, off, Math.min(data.length, off + len - done)))
      } catch (error) {
        throw errno('EIO', (error as Error).message)
      }

      h.next = i + 1
    }

    return done
  }

  write(path: string, fh: number, buf: Buffer, len: number, pos: number, caller: Caller): Promise<number> {
    return this.handles.has(fh) || this.where(path) ? erofs() : this.inner.write(path, fh, buf, len, pos, caller)
  }

  async flush(path: string, fh: number): Promise<void> {
    if (!this.handles.has(fh)) await this.inner.flush(path, fh)
  }

  async fsync(path: string, fh: number, datasync: boolean): Promise<void> {
    if (!this.handles.has(fh)) await this.inner.fsync(path, fh, datasync)
  }

  async release(path: string, fh: number): Promise<void> {
    if (!this.handles.delete(fh)) await this.inner.release(path, fh)
  }

  // ---- changes: none below /.paciofs-history ------------------------------

  truncate(path: string, size: number, caller: Caller): Promise<void> {
    return this.where(path) ? erofs() : this.inner.truncate(path, size, caller)
  }

  ftruncate(path: string, fh: number, size: number, caller: Caller): Promise<void> {
    return this.handles.has(fh) || this.where(path) ? erofs() : this.inner.ftruncate(path, fh, size, caller)
  }

  mknod(path: string, mode: number, rdev: number, caller: Caller): Promise<void> {
    return this.where(path) ? erofs() : this.inner.mknod(path, mode, rdev, caller)
  }

  mkdir(path: string, mode: number, caller: Caller): Promise<void> {
    return this.where(path) ? erofs() : this.inner.mkdir(path, mode, caller)
  }

  symlink(target: string, path: string, caller: Caller): Promise<void> {
    return this.where(path) ? erofs() : this.inner.symlink(target, path, caller)
  }

  link(existing: string, path: string, caller: Caller): Promise<void> {
    return this.where(existing) || this.where(path) ? erofs() : this.inner.link(existing, path, caller)
  }

  unlink(path: string, caller: Caller): Promise<void> {
    return this.where(path) ? erofs() : this.inner.unlink(path, caller)
  }

  rmdir(path: string, caller: Caller): Promise<void> {
    return this.where(path) ? erofs() : this.inner.rmdir(path, caller)
  }

  rename(from: string, to: string, caller: Caller): Promise<void> {
    return this.where(from) || this.where(to) ? erofs() : this.inner.rename(from, to, caller)
  }

  chmod(path: string, mode: number, caller: Caller): Promise<void> {
    return this.where(path) ? erofs() : this.inner.chmod(path, mode, caller)
  }

  chown(path: string, uid: number, gid: number, caller: Caller): Promise<void> {
    return this.where(path) ? erofs() : this.inner.chown(path, uid, gid, caller)
  }

  utimens(path: string, atime: TimeSpec, mtime: TimeSpec, caller: Caller): Promise<void> {
    return this.where(path) ? erofs() : this.inner.utimens(path, atime, mtime, caller)
  }

  setxattr(path: string, name: string, value: Buffer, flags: number, caller: Caller): Promise<void> {
    return this.where(path) ? erofs() : this.inner.setxattr(path, name, value, flags, caller)
  }

  removexattr(path: string, name: string, caller: Caller): Promise<void> {
    return this.where(path) ? erofs() : this.inner.removexattr(path, name, caller)
  }

  sync(): Promise<void> {
    return this.inner.sync()
  }

  close(): Promise<void> {
    return this.inner.close()
  }

  /** Creates made by the binding (never below the view: its root is skipped there). */
  startFastCreate(onError: (error: unknown) => void, opts?: {releases?: boolean}): boolean {
    return this.inner.startFastCreate?.(onError, opts) ?? false
  }

  stopFastCreate(): void {
    this.inner.stopFastCreate?.()
  }

  /** The present's handles may be served by the binding; the past's (fh >= FH_BASE) never are. */
  usePassthrough(pt: Passthrough, opts?: {writes?: boolean; meta?: boolean}): void {
    pt.xattrSkip(ROOT)
    this.inner.usePassthrough?.(pt, opts)
  }
}
