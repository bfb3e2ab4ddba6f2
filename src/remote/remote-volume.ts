/**
 * The Volume API over the network: what `paciofs mount --server` puts under
 * the FUSE adapter. Each operation is one RPC (reads and writes in chunks of
 * at most MAX_CHUNK). File handles are the client's own numbers mapped to the
 * server's: when the session had to be opened anew (the server restarted, or
 * the connection was re-established) a handle is reopened by its path on its
 * next use, without O_TRUNC.
 *
 * Writes are written behind, like NFS: sequential writes to a handle are
 * gathered into messages of MAX_CHUNK and sent without waiting, at most
 * MAX_INFLIGHT per handle; an error is reported by the next write, flush
 * (close), fsync or release of the handle. Every other operation first waits
 * until all written data has reached the server, so nothing reads around it.
 * Reads fetch a whole chunk when they run sequentially (read-ahead), kept for
 * at most READAHEAD_TTL_MS and dropped on any write by this client.
 */
import {constants as C, type BigIntStats, type StatsFs} from 'node:fs'
import type {Caller, TimeSpec, Volume} from '../volume/types.js'
import type {Connection} from './connection.js'
import {encodeWriteInPlace, errnoError, HEADROOM, statfsFromWire, statFromWire} from './wire.js'

interface Handle {
  path: string
  flags: number
  remote: number
  generation: number
  /** written, not yet sent */
  pending?: {offset: number; buf: Buffer; size: number; caller: Caller}
  /** sent, not yet acknowledged */
  inflight: Set<Promise<void>>
  /** where the last sent write ended (pipelining only continues a sequential run) */
  sentEnd: number
  /** a write-behind failure not yet reported */
  error?: unknown
  ahead?: Ahead
  /** the chunk after `ahead`, being fetched while `ahead` is read */
  next?: {offset: number; chunk: Promise<Ahead | undefined>}
  readEnd: number
  /** writes, and sends, of one handle run one after the other (the kernel may issue them concurrently) */
  writing: Promise<unknown>
  sending: Promise<unknown>
}

function serially<T>(h: Handle, key: 'writing' | 'sending', work: () => Promise<T>): Promise<T> {
  const next = h[key].then(work, work)
  h[key] = next.catch(() => {})
  return next
}

interface Ahead {
  offset: number
  data: Buffer
  eof: boolean
  at: number
}

const MAX_INFLIGHT = 4
const READAHEAD_TTL_MS = 1000

const wireTime = (t: TimeSpec): string => (typeof t === 'bigint' ? t.toString() : t)

export class RemoteVolume implements Volume {
  private readonly handles = new Map<number, Handle>()
  private readonly dirty = new Set<Handle>()
  /** buffers for gathered writes: HEADROOM for the message header, then up to maxChunk bytes */
  private readonly pool: Buffer[] = []
  private nextFh = 1

  constructor(private readonly conn: Connection) {}

  private caller(c: Caller) {
    return {uid: c.uid, gid: c.gid, pid: c.pid}
  }

  private add(path: string, flags: number, remote: number): number {
    const fh = this.nextFh++
    if (this.nextFh > 0x7FFF_FFFF) this.nextFh = 1
    this.handles.set(fh, {path, flags, remote, generation: this.conn.generation, inflight: new Set(), sentEnd: -1, readEnd: -1, writing: Promise.resolve(), sending: Promise.resolve()})
    return fh
  }

  // ---- write-behind --------------------------------------------------------

  /** Sends what a handle has gathered (not waiting for the answer). */
  private send(h: Handle): Promise<void> {
    return serially(h, 'sending', () => this.sendNow(h))
  }

  private async sendNow(h: Handle): Promise<void> {
    const p = h.pending
    if (!p) return
    h.pending = undefined
    if (p.offset !== h.sentEnd || h.inflight.size >= MAX_INFLIGHT) await this.sent(h, p.offset !== h.sentEnd ? 0 : MAX_INFLIGHT - 1)
    h.sentEnd = p.offset + p.size
    const work: Promise<void> = (async () => {
      const r = await this.remote(h)
      const res = await this.conn.call('Write', encodeWriteInPlace(p.buf, p.size, r.remote, p.offset, p.caller))
      if (res.count !== p.size) throw errnoError('EIO', `short write: ${res.count} of ${p.size} bytes at ${p.offset}`)
    })().catch(error => {
      h.error ??= error
    }).finally(() => {
      if (this.pool.length < 2 * MAX_INFLIGHT) this.pool.push(p.buf)
      h.inflight.delete(work)
      if (h.inflight.size === 0 && !h.pending) this.dirty.delete(h)
    })
    h.inflight.add(work)
  }

  /** Waits until at most `keep` writes of the handle are in flight. */
  private async sent(h: Handle, keep = 0): Promise<void> {
    while (h.inflight.size > keep) await Promise.race(h.inflight)
  }

  /** Everything the handle was given has reached the server; reports a write-behind failure. */
  private async drain(h: Handle): Promise<void> {
    await this.send(h)
    await this.sent(h)
    this.dirty.delete(h)
    if (h.error !== undefined) {
      const e = h.error
      h.error = undefined
      throw e
    }
  }

  /** Before any other operation: all written data is on the server (failures stay with their handles). */
  private async settle(): Promise<void> {
    if (this.dirty.size === 0) return
    await Promise.all([...this.dirty].map(h => this.send(h).then(() => this.sent(h))))
  }

  /** An operation other than a write: written data reaches the server first. */
  private async call(method: string, req: Record<string, unknown>) {
    await this.settle()
    return this.conn.call(method, req)
  }

  private forgetReadahead(): void {
    for (const h of this.handles.values()) {
      h.ahead = undefined
      h.next = undefined
    }
  }

  /** The server's handle for fh, reopened if the session changed since it was opened. */
  private handle(fh: number): Handle {
    const h = this.handles.get(fh)
    if (!h) throw errnoError('EBADF', `no open file handle ${fh}`)
    return h
  }

  private async remote(h: Handle): Promise<Handle> {
    if (h.generation !== this.conn.generation) {
      const r = await this.conn.call('Open', {path: h.path, flags: h.flags & ~(C.O_TRUNC | C.O_CREAT | C.O_EXCL), mode: 0, caller: {uid: 0, gid: 0, pid: 0}})
      h.remote = Number(r.fh)
      h.generation = this.conn.generation
    }

    return h
  }

  // ---- reads -------------------------------------------------------------

  async getattr(path: string): Promise<BigIntStats> {
    return statFromWire((await this.call('Getattr', {path})).stat)
  }

  async fgetattr(path: string, fh: number): Promise<BigIntStats> {
    const h = this.handles.get(fh)
    if (!h) return this.getattr(path)
    await this.settle()
    const r = await this.remote(h)
    return statFromWire((await this.call('Fgetattr', {path, fh: r.remote})).stat)
  }

  async access(path: string, mode: number): Promise<void> {
    await this.call('Access', {path, mode})
  }

  async statfs(path: string): Promise<StatsFs> {
    return statfsFromWire(await this.call('Statfs', {path}) as never)
  }

  async readdir(path: string): Promise<string[]> {
    return (await this.call('Readdir', {path})).names
  }

  async readlink(path: string): Promise<string> {
    return (await this.call('Readlink', {path})).text
  }

  async getxattr(path: string, name: string): Promise<Buffer> {
    return (await this.call('Getxattr', {path, name})).data
  }

  async listxattr(path: string): Promise<string[]> {
    return (await this.call('Listxattr', {path})).names
  }

  // ---- file handles ------------------------------------------------------

  async open(path: string, flags: number, caller: Caller): Promise<number> {
    const generation = this.conn.generation
    const r = await this.call('Open', {path, flags, caller: this.caller(caller)}).catch(error => {
      // failed over to another server meanwhile: open there (a read-only open changes nothing)
      if ((error as NodeJS.ErrnoException).code === 'ENOTCONN' && this.conn.generation !== generation && (flags & 3) === C.O_RDONLY) {
        return this.call('Open', {path, flags, caller: this.caller(caller)})
      }

      throw error
    })
    return this.add(path, flags, Number(r.fh))
  }

  async create(path: string, mode: number, flags: number, caller: Caller): Promise<number> {
    const r = await this.call('Create', {path, flags, mode, caller: this.caller(caller)})
    return this.add(path, flags, Number(r.fh))
  }

  async read(path: string, fh: number, buf: Buffer, len: number, pos: number): Promise<number> {
    const h = this.handle(fh)
    await this.settle()
    const fresh = (a?: Ahead) => a !== undefined && Date.now() - a.at < READAHEAD_TTL_MS && pos >= a.offset && (pos + len <= a.offset + a.data.length || a.eof)
    if (!fresh(h.ahead) && h.next && h.next.offset === pos) {
      const next = h.next
      h.next = undefined
      h.ahead = await next.chunk.catch(() => undefined)
    }

    const a = h.ahead
    if (a && fresh(a)) {
      const n = a.data.copy(buf, 0, pos - a.offset, Math.min(a.data.length, pos - a.offset + len))
      h.readEnd = pos + n
      if (!a.eof && !h.next) this.prefetch(h, path, a.offset + a.data.length)
      return n
    }

    const sequential = pos === h.readEnd || pos === 0
    const got = await this.fetch(h, path, pos, sequential ? Math.max(len, this.conn.maxChunk) : len)
    if (sequential) {
      h.ahead = got
      if (!got.eof) this.prefetch(h, path, pos + got.data.length)
    }

    const n = got.data.copy(buf, 0, 0, Math.min(len, got.data.length))
    h.readEnd = pos + n
    return n
  }

  /** Reads up to `want` bytes at `pos` in chunks. */
  private async fetch(h: Handle, path: string, pos: number, want: number): Promise<Ahead> {
    let got = 0
    const parts: Buffer[] = []
    while (got < want) {
      const r = await this.remote(h)
      const ask = Math.min(want - got, this.conn.maxChunk)
      const generation = this.conn.generation
      let data: Buffer
      try {
        data = (await this.conn.call('Read', {path, fh: r.remote, length: ask, offset: pos + got})).data
      } catch (error) {
        // the connection failed over to another server meanwhile: reopen there and read again
        if ((error as NodeJS.ErrnoException).code === 'ENOTCONN' && this.conn.generation !== generation) continue
        throw error
      }
      parts.push(data)
      got += data.length
      if (data.length < ask) break
    }

    return {offset: pos, data: parts.length === 1 ? parts[0] : Buffer.concat(parts), eof: got < want, at: Date.now()}
  }

  /** Fetches the next chunk of a sequential reader while it reads this one. */
  private prefetch(h: Handle, path: string, pos: number): void {
    const chunk = this.fetch(h, path, pos, this.conn.maxChunk).catch(() => undefined)
    h.next = {offset: pos, chunk}
  }

  // The FUSE buffer stays valid until the write is answered: it is copied once, into a pooled buffer.
  write(path: string, fh: number, buf: Buffer, len: number, pos: number, caller: Caller): Promise<number> {
    const h = this.handle(fh)
    return serially(h, 'writing', () => this.writeNow(path, h, buf, len, pos, caller))
  }

  private async writeNow(path: string, h: Handle, buf: Buffer, len: number, pos: number, caller: Caller): Promise<number> {
    if (h.error !== undefined) await this.drain(h)
    this.forgetReadahead()
    if (len > this.conn.maxChunk) {
      await this.drain(h)
      let done = 0
      while (done < len) {
        const r = await this.remote(h)
        const n = Math.min(len - done, this.conn.maxChunk)
        const res = await this.conn.call('Write', {path, fh: r.remote, data: buf.subarray(done, done + n), offset: pos + done, caller: this.caller(caller)})
        done += res.count
        if (res.count < n) break
      }

      return done
    }

    const p = h.pending
    if (p && p.offset + p.size === pos && p.size + len <= this.conn.maxChunk && p.caller.uid === caller.uid && p.caller.gid === caller.gid) {
      buf.copy(p.buf, HEADROOM + p.size, 0, len)
      p.size += len
    } else {
      if (p) await this.send(h)
      const fresh = this.pool.pop() ?? Buffer.allocUnsafe(HEADROOM + this.conn.maxChunk)
      buf.copy(fresh, HEADROOM, 0, len)
      h.pending = {offset: pos, buf: fresh, size: len, caller}
    }

    this.dirty.add(h)
    if (h.pending!.size >= this.conn.maxChunk) await this.send(h)
    return len
  }

  /** close(2): written data reaches the server and its failures are reported; the server's flush is a no-op, so no call is made. */
  async flush(_path: string, fh: number): Promise<void> {
    await this.drain(this.handle(fh))
  }

  async fsync(path: string, fh: number, datasync: boolean): Promise<void> {
    const h = this.handle(fh)
    await this.drain(h)
    const r = await this.remote(h)
    await this.call('Fsync', {path, fh: r.remote, datasync})
  }

  async release(path: string, fh: number): Promise<void> {
    const h = this.handle(fh)
    let failed: unknown
    await this.drain(h).catch(error => (failed = error))
    this.handles.delete(fh)
    this.dirty.delete(h)
    if (h.generation === this.conn.generation) await this.call('Release', {path, fh: h.remote}) // else: the server released it when its session ended
    if (failed !== undefined) throw failed
  }

  // ---- namespace and attribute changes -----------------------------------

  async truncate(path: string, size: number, caller: Caller): Promise<void> {
    this.forgetReadahead()
    await this.call('Truncate', {path, size, caller: this.caller(caller)})
  }

  async ftruncate(path: string, fh: number, size: number, caller: Caller): Promise<void> {
    const h = this.handle(fh)
    await this.settle()
    this.forgetReadahead()
    const r = await this.remote(h)
    await this.call('Ftruncate', {path, fh: r.remote, size, caller: this.caller(caller)})
  }

  async mknod(path: string, mode: number, rdev: number, caller: Caller): Promise<void> {
    await this.call('Mknod', {path, mode, rdev, caller: this.caller(caller)})
  }

  async mkdir(path: string, mode: number, caller: Caller): Promise<void> {
    await this.call('Mkdir', {path, mode, caller: this.caller(caller)})
  }

  async symlink(target: string, path: string, caller: Caller): Promise<void> {
    await this.call('Symlink', {from: target, to: path, caller: this.caller(caller)})
  }

  async link(existing: string, path: string, caller: Caller): Promise<void> {
    await this.call('Link', {from: existing, to: path, caller: this.caller(caller)})
  }

  async unlink(path: string, caller: Caller): Promise<void> {
    await this.call('Unlink', {path, caller: this.caller(caller)})
  }

  async rmdir(path: string, caller: Caller): Promise<void> {
    await this.call('Rmdir', {path, caller: this.caller(caller)})
  }

  async rename(from: string, to: string, caller: Caller): Promise<void> {
    await this.call('Rename', {from, to, caller: this.caller(caller)})
    for (const h of this.handles.values()) {
      if (h.path === from) h.path = to
      else if (h.path.startsWith(from + '/')) h.path = to + h.path.slice(from.length)
    }
  }

  async chmod(path: string, mode: number, caller: Caller): Promise<void> {
    await this.call('Chmod', {path, mode, caller: this.caller(caller)})
  }

  async chown(path: string, uid: number, gid: number, caller: Caller): Promise<void> {
    const id = (v: number) => (v === 0xFFFF_FFFF ? -1 : v)
    await this.call('Chown', {path, uid: id(uid), gid: id(gid), caller: this.caller(caller)})
  }

  async utimens(path: string, atime: TimeSpec, mtime: TimeSpec, caller: Caller): Promise<void> {
    await this.call('Utimens', {path, atime: wireTime(atime), mtime: wireTime(mtime), caller: this.caller(caller)})
  }

  async setxattr(path: string, name: string, value: Buffer, flags: number, caller: Caller): Promise<void> {
    await this.call('Setxattr', {path, name, value, flags, caller: this.caller(caller)})
  }

  async removexattr(path: string, name: string, caller: Caller): Promise<void> {
    await this.call('Removexattr', {path, name, caller: this.caller(caller)})
  }

  // ---- lifecycle ---------------------------------------------------------

  async sync(): Promise<void> {
    await this.call('Sync', {path: '/'})
  }

  async close(): Promise<void> {
    for (const [fh, h] of [...this.handles]) await this.release(h.path, fh).catch(() => {})
    this.conn.close()
  }
}
