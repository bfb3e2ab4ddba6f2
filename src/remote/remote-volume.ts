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
 * A sequential reader is served from a streamed read-ahead (read-ahead.ts:
 * ReadStream calls of 4 MiB windows, at most two ahead), dropped on any write
 * or truncate by this client; other reads are one Read call each.
 * Attributes the server sends back with a change answer the kernel's next
 * questions for a short while (attr-cache.ts), and the names of directories
 * this client made and changed alone answer lookups of names that are not
 * there, nor of the entries it made and has not touched since (name-cache.ts).
 */
import {constants as C, type BigIntStats, type StatsFs} from 'node:fs'
import {posix} from 'node:path'
import type {Caller, TimeSpec, Volume} from '../volume/types.js'
import {AttrCache} from './attr-cache.js'
import {NameCache, type NameChanges} from './name-cache.js'
import type {Connection} from './connection.js'
import {ReadAhead} from './read-ahead.js'
import {WriteStream} from './write-stream.js'
import {WRITE_RESET} from './frames.js'
import {encodeWriteInPlace, errnoError, HEADROOM, statfsFromWire, statFromWire} from './wire.js'

interface Handle {
  path: string
  flags: number
  remote: number
  generation: number
  /** written, not yet sent */
  pending?: Pending
  /** full messages answered to the writer and queued to be sent (at most MAX_BEHIND) */
  behind: number
  /** sent, not yet acknowledged */
  inflight: Set<Promise<void>>
  /** bytes written since the handle was opened or last fsynced (the server's fsync and release work grows with them) */
  unsynced: number
  /** where the last sent write ended (pipelining only continues a sequential run) */
  sentEnd: number
  /** a write-behind failure not yet reported */
  error?: unknown
  /** a write-behind failure was reported: the next write over the data channel says so (the server then writes again) */
  reset?: boolean
  /** the handle's WriteStream (protocol 2), opened by its first write in a session */
  stream?: WriteStream
  /** streamed read-ahead of a sequential reader */
  ahead?: ReadAhead
  /** read-aheads in a row that served nothing (after 3, the handle reads without) */
  aheadMisses: number
  readEnd: number
  /** writes, and sends, of one handle run one after the other (the kernel may issue them concurrently) */
  writing: Promise<unknown>
  sending: Promise<unknown>
}

interface Pending {
  offset: number
  buf: Buffer
  size: number
  caller: Caller
}

function serially<T>(h: Handle, key: 'writing' | 'sending', work: () => Promise<T>): Promise<T> {
  const next = h[key].then(work, work)
  h[key] = next.catch(() => {})
  return next
}

/**
 * Messages of a handle on their way to the server at once. 8 (was 4): on 2
 * busy cores the server's loop is sometimes not scheduled for a few ms, and
 * with 4 MiB out the writer then waited; alternating 4 and 8 in one build
 * (1 GiB, load 6-9), 8 was faster in 5 of 5 pairs (+5% to +44%); 16 was
 * slower (the data server stops reading a connection at 16 MiB queued).
 */
const MAX_INFLIGHT = 8
/**
 * Full messages a handle may have answered and queued for sending beyond
 * those in flight. A write that fills a message is answered before the
 * message is encrypted and sent, so the writer's next write(2) crosses the
 * kernel and the FUSE thread while this thread sends.
 */
const MAX_BEHIND = 1
/** PACIOFS_SEND_BEHIND=0: a write that fills a message waits until it is sent (for comparisons) */
const SEND_BEHIND = process.env.PACIOFS_SEND_BEHIND !== '0'
/** Release calls on their way at most (beyond, a release waits for one) */
const MAX_RELEASING = 64
/**
 * How long a release waits for others to go with it in one Release call
 * (a server that takes several: release_batch). Nothing waits for them but a
 * later change to the same path, an fsync, a sync or the unmount, and those
 * send them at once.
 */
const RELEASE_HOLD_MS = 5
/** Extra deadline of an fsync or release per byte written before it: 1 s per 2 MiB (a 1 GiB file: 15 s + 512 s at most). */
const MS_PER_UNSYNCED_BYTE = 1000 / (2 * 1024 * 1024)

/** The attributes of the entry a change reply made (the name cache keeps them). */
const madeStat = (r: Record<string, any>) => (r.stat ? statFromWire(r.stat) : undefined)

/** Keeps the attributes a change reply carries: the directory's after it and, if made, the new entry's. */
const keepMade = (path: string) => (r: Record<string, any>, c: {stat(path: string, s: BigIntStats | undefined): void}) => {
  c.stat(posix.dirname(path), r.parent ? statFromWire(r.parent) : undefined)
  c.stat(path, r.stat ? statFromWire(r.stat) : undefined)
}

const wireTime = (t: TimeSpec): string => (typeof t === 'bigint' ? t.toString() : t)

export class RemoteVolume implements Volume {
  private readonly handles = new Map<number, Handle>()
  private readonly dirty = new Set<Handle>()
  /** buffers for gathered writes: HEADROOM for the message header, then up to maxChunk bytes */
  private readonly pool: Buffer[] = []
  private nextFh = 1
  private readonly cache = new AttrCache()
  private readonly names = new NameCache()
  /** the session the name cache's knowledge came from */
  private namesGeneration = -1
  /** Release calls on their way (release answers at once) */
  private readonly releasing = new Map<object, Promise<void> & {path: string}>()
  /** releases waiting to go in one Release call (RELEASE_HOLD_MS) */
  private held: Array<{fh: number; path: string; unsynced: number; generation: number; sent: () => void}> = []
  private holdTimer?: NodeJS.Timeout

  constructor(private readonly conn: Connection) {}

  private caller(c: Caller) {
    return {uid: c.uid, gid: c.gid, pid: c.pid}
  }

  private add(path: string, flags: number, remote: number): number {
    const fh = this.nextFh++
    if (this.nextFh > 0x7FFF_FFFF) this.nextFh = 1
    this.handles.set(fh, {path, flags, remote, generation: this.conn.generation, inflight: new Set(), behind: 0, sentEnd: -1, readEnd: -1, aheadMisses: 0, unsynced: 0, writing: Promise.resolve(), sending: Promise.resolve()})
    return fh
  }

  // ---- write-behind --------------------------------------------------------

  /** Sends what a handle has gathered (not waiting for the answer). */
  private send(h: Handle): Promise<void> {
    return serially(h, 'sending', () => this.sendNow(h, h.pending))
  }

  /**
   * Sends the handle's full message after the current write is answered
   * (the send itself runs in a later turn of the loop, behind the reply to
   * the kernel); failures are kept for the handle like any write-behind's.
   */
  private sendBehind(h: Handle): void {
    const p = h.pending!
    h.pending = undefined
    h.behind++
    void serially(h, 'sending', async () => {
      await new Promise<void>(resolve => setImmediate(resolve))
      try {
        await this.sendNow(h, p)
      } finally {
        h.behind--
      }
    })
  }

  private async sendNow(h: Handle, p: Pending | undefined): Promise<void> {
    if (!p) return
    if (h.pending === p) h.pending = undefined
    if (p.offset !== h.sentEnd || h.inflight.size >= MAX_INFLIGHT) await this.sent(h, p.offset !== h.sentEnd ? 0 : MAX_INFLIGHT - 1)
    h.sentEnd = p.offset + p.size
    // the stream (or none: protocol 1) and the server's handle are had here, one send at a time,
    // so messages enter the stream in the order they were written; the answer is waited for apart
    let sending: Promise<unknown>
    try {
      const data = await this.conn.data?.()
      const stream = data ? undefined : await this.writer(h)
      const r = await this.remote(h)
      if (data && data.generation === r.generation) {
        const flags = h.reset ? WRITE_RESET : 0
        h.reset = false
        sending = data.write(p.buf, HEADROOM, p.size, {fh: r.remote, flags, offset: p.offset, ...p.caller})
      } else {
        const msg = encodeWriteInPlace(p.buf, p.size, r.remote, p.offset, p.caller)
        sending = stream
          ? stream.send(msg, p.size)
          : this.conn.call('Write', msg).then(res => {
            if (res.count !== p.size) throw errnoError('EIO', `short write: ${res.count} of ${p.size} bytes at ${p.offset}`)
          })
      }
    } catch (error) {
      sending = Promise.reject(error)
    }

    const work: Promise<void> = sending.then(() => {}, error => {
      h.error ??= error
    }).finally(() => {
      if (this.pool.length < 2 * MAX_INFLIGHT) this.pool.push(p.buf)
      h.inflight.delete(work)
      if (h.inflight.size === 0 && !h.pending && h.behind === 0) this.dirty.delete(h)
    })
    h.inflight.add(work)
  }

  /**
   * The handle's WriteStream in the current session (opened on first use, or
   * anew after a failure or a new session); undefined if the server speaks
   * protocol 1 (each write is then a Write call).
   */
  private async writer(h: Handle): Promise<WriteStream | undefined> {
    if (h.stream?.usable && h.stream.generation === this.conn.generation) return h.stream
    h.stream?.end()
    h.stream = undefined
    const opened = await this.conn.openDuplex('WriteStream')
    if (!opened) return undefined
    h.stream = new WriteStream(opened.stream, e => this.conn.errno(e), opened.generation)
    return h.stream
  }

  /** No more writes on the handle's stream (those sent are still answered). */
  private endStream(h: Handle): void {
    h.stream?.end()
    h.stream = undefined
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
      h.reset = true
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

  /**
   * A call that changes something: the attribute cache forgets what it may
   * make stale, and keeps what the reply says (if nothing else changed meanwhile).
   */
  private async change(method: string, req: Record<string, unknown>, keep?: (r: Record<string, any>, c: {stat(path: string, s: BigIntStats | undefined): void}) => void,
    names?: (c: NameChanges, r: Record<string, any>) => void) {
    await this.released(req.path, req.from, req.to)
    const ticket = this.cache.begin()
    // a change to a name: what the name cache knows holds on only if the reply's version follows its last
    const naming = names !== undefined || method === 'Link' || method === 'Rename'
    if (naming) {
      this.namesSession()
      this.names.begin()
    } else if (typeof req.path === 'string') {
      this.names.touched(req.path) // its attributes change: the name cache no longer vouches for them
    }

    let r: Record<string, any> | undefined
    let version: bigint | undefined
    try {
      r = await this.call(method, req)
      version = names ? BigInt(r.names_version ?? 0) : undefined
    } finally {
      this.cache.end()
      if (naming) this.names.end(version, names && r ? c => names(c, r!) : undefined, r ? BigInt(r.others_version ?? 0) : undefined)
    }

    if (keep) this.cache.fill(ticket, c => keep(r, c))
    return r
  }

  /** The name cache knows nothing of another session's server. */
  private namesSession(): void {
    if (this.namesGeneration === this.conn.generation) return
    this.names.forget()
    this.namesGeneration = this.conn.generation
  }

  private forgetReadahead(): void {
    for (const h of this.handles.values()) this.stopAhead(h)
  }

  private stopAhead(h: Handle): void {
    h.ahead?.close()
    h.ahead = undefined
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
    const cached = this.cache.stat(path)
    if (cached) return cached
    this.namesSession()
    if (this.names.absent(path)) throw errnoError('ENOENT', `no such file or directory: ${path}`)
    const known = this.names.stat(path)
    if (known) return known
    return statFromWire((await this.call('Getattr', {path})).stat)
  }

  async fgetattr(path: string, fh: number): Promise<BigIntStats> {
    const h = this.handles.get(fh)
    if (!h) return this.getattr(path)
    const cached = this.cache.stat(h.path)
    if (cached) return cached
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
    const cached = this.cache.xattr(path, name)
    if (cached) {
      if ('value' in cached) return cached.value
      throw errnoError(cached.errno, cached.message)
    }

    const ticket = this.cache.ticket()
    try {
      const data: Buffer = (await this.call('Getxattr', {path, name})).data
      this.cache.fill(ticket, c => c.xattr(path, name, {value: data}))
      return data
    } catch (error) {
      const e = error as NodeJS.ErrnoException
      if (e.code === 'ENODATA') this.cache.fill(ticket, c => c.xattr(path, name, {errno: e.code!, message: e.message}))
      throw error
    }
  }

  async listxattr(path: string): Promise<string[]> {
    return (await this.call('Listxattr', {path})).names
  }

  // ---- file handles ------------------------------------------------------

  async open(path: string, flags: number, caller: Caller): Promise<number> {
    this.names.touched(path) // reads through it change the access time
    const generation = this.conn.generation
    const req = {path, flags, caller: this.caller(caller)}
    const r = await ((flags & C.O_TRUNC) !== 0 ? this.change('Open', req) : this.call('Open', req)).catch(error => {
      // failed over to another server meanwhile: open there (a read-only open changes nothing)
      if ((error as NodeJS.ErrnoException).code === 'ENOTCONN' && this.conn.generation !== generation && (flags & 3) === C.O_RDONLY) {
        return this.call('Open', req)
      }

      throw error
    })
    return this.add(path, flags, Number(r.fh))
  }

  /** The reply's attributes of the new file and its directory answer the kernel's next questions. */
  async create(path: string, mode: number, flags: number, caller: Caller): Promise<number> {
    const r = await this.change('Create', {path, flags, mode, caller: this.caller(caller)}, (r, c) => {
      c.stat(path, r.stat ? statFromWire(r.stat) : undefined)
      c.stat(posix.dirname(path), r.parent ? statFromWire(r.parent) : undefined)
    }, (n, r) => n.added(path, false, madeStat(r)))
    return this.add(path, flags, Number(r.fh))
  }

  /**
   * A sequential reader (from the start, or where its last read ended) is
   * served from a streamed read-ahead; any other read, or one the read-ahead
   * cannot serve, is one Read call.
   */
  async read(path: string, fh: number, buf: Buffer, len: number, pos: number): Promise<number> {
    const h = this.handle(fh)
    this.names.touched(h.path) // the access time may change
    await this.settle()
    const sequential = pos === h.readEnd || pos === 0
    let fresh = false
    if (!h.ahead && sequential && h.aheadMisses < 3) {
      fresh = true
      const r = await this.remote(h)
      const generation = h.generation
      h.ahead = new ReadAhead(async (offset, length) => {
        if (h.generation !== generation) throw errnoError('ENOTCONN', 'session changed')
        const data = await this.conn.data?.()
        if (data && data.generation === generation) return data.readStream(r.remote, offset, length)
        return this.conn.openStream('ReadStream', {path: h.path, fh: r.remote, offset, length})
      }, pos)
    }

    const n = h.ahead ? await h.ahead.read(buf, len, pos) : undefined
    if (n !== undefined) {
      h.aheadMisses = 0
      h.readEnd = pos + n
      return n
    }

    if (fresh) h.aheadMisses++
    // a read behind the read-ahead (the kernel's reads come concurrently) leaves it be
    if (h.ahead && (h.ahead.broken || h.ahead.beyond(pos))) this.stopAhead(h)
    let data: Buffer
    for (let attempt = 0; ; attempt++) {
      const r = await this.remote(h)
      const generation = this.conn.generation
      try {
        data = (await this.conn.call('Read', {path, fh: r.remote, length: Math.min(len, this.conn.maxChunk), offset: pos})).data
        break
      } catch (error) {
        // the connection failed over to another server meanwhile: reopen there and read again
        if (attempt === 0 && (error as NodeJS.ErrnoException).code === 'ENOTCONN' && this.conn.generation !== generation) continue
        throw error
      }
    }

    const got = data.copy(buf, 0, 0, Math.min(len, data.length))
    h.readEnd = pos + got
    return got
  }

  // The FUSE buffer stays valid until the write is answered: it is copied once, into a pooled buffer.
  write(path: string, fh: number, buf: Buffer, len: number, pos: number, caller: Caller): Promise<number> {
    const h = this.handle(fh)
    this.names.touched(h.path)
    this.cache.begin('data') // size and times change; xattrs do not
    this.cache.end()
    return serially(h, 'writing', () => this.writeNow(path, h, buf, len, pos, caller))
  }

  private async writeNow(path: string, h: Handle, buf: Buffer, len: number, pos: number, caller: Caller): Promise<number> {
    if (h.error !== undefined) await this.drain(h)
    h.unsynced += len
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
      while (h.behind >= MAX_BEHIND) await h.sending
      const fresh = this.pool.pop() ?? Buffer.allocUnsafe(HEADROOM + this.conn.maxChunk)
      buf.copy(fresh, HEADROOM, 0, len)
      h.pending = {offset: pos, buf: fresh, size: len, caller}
    }

    this.dirty.add(h)
    if (h.pending!.size >= this.conn.maxChunk) {
      if (SEND_BEHIND) this.sendBehind(h)
      else await this.send(h)
    }

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
    const covered = h.unsynced
    await this.settle()
    await this.released(h.path) // what other descriptors of the file wrote and closed is covered too
    await this.conn.call('Fsync', {path, fh: r.remote, datasync}, covered * MS_PER_UNSYNCED_BYTE)
    h.unsynced = Math.max(0, h.unsynced - covered)
  }

  async release(path: string, fh: number): Promise<void> {
    const h = this.handle(fh)
    let failed: unknown
    await this.drain(h).catch(error => (failed = error))
    this.endStream(h)
    this.stopAhead(h)
    this.handles.delete(fh)
    this.dirty.delete(h)
    if (failed !== undefined) {
      // the application saw the failure at close (flush); release the server's handle and say it again
      if (h.generation === this.conn.generation) await this.conn.call('Release', {path: h.path, fh: h.remote}).catch(() => {})
      throw failed
    }

    if (h.generation !== this.conn.generation) return // the server released it when its session ended
    await this.settle()
    // Answered at once: every byte written has been acknowledged by the server (drain above), and
    // close(2) has returned already. The Release goes on behind; a later change to the same path
    // waits for it (so the server records them in the order they were made), as does unmounting.
    while (this.releasing.size >= MAX_RELEASING) await Promise.race(this.releasing.values())
    const key = {}
    const p = h.path
    const work = this.sendRelease(p, h.remote, h.unsynced, h.generation).finally(() => this.releasing.delete(key))
    this.releasing.set(key, Object.assign(work, {path: p}))
  }

  /**
   * One Release call, or (a server that takes several) a place in the next,
   * sent within RELEASE_HOLD_MS. Resolves when it has been answered; as
   * before, its error is dropped: the kernel ignores a release's error, and
   * the server releases on its own at the session's end.
   */
  private sendRelease(path: string, fh: number, unsynced: number, generation: number): Promise<void> {
    if (!(this.conn.releaseBatch > 1)) return this.conn.call('Release', {path, fh}, unsynced * MS_PER_UNSYNCED_BYTE).then(() => {}, () => {})
    return new Promise<void>(resolve => {
      this.held.push({fh, path, unsynced, generation, sent: resolve})
      if (this.held.length >= this.conn.releaseBatch) this.sendHeld()
      else this.holdTimer ??= setTimeout(() => this.sendHeld(), RELEASE_HOLD_MS)
    })
  }

  /** Sends the releases held, in Release calls of at most release_batch handles (those of an ended session: the server released them). */
  private sendHeld(): void {
    clearTimeout(this.holdTimer)
    this.holdTimer = undefined
    const held = this.held
    this.held = []
    const batch = Math.max(1, this.conn.releaseBatch)
    const live = held.filter(r => r.generation === this.conn.generation)
    for (const r of held) if (r.generation !== this.conn.generation) r.sent()
    for (let i = 0; i < live.length; i += batch) {
      const rs = live.slice(i, i + batch)
      const unsynced = rs.reduce((sum, r) => sum + r.unsynced, 0)
      void this.conn.call('Release', {path: rs[0].path, fh: rs[0].fh, more: rs.slice(1).map(r => r.fh)}, unsynced * MS_PER_UNSYNCED_BYTE)
        .then(() => {}, () => {})
        .finally(() => {
          for (const r of rs) r.sent()
        })
    }
  }

  /** Releases still on their way to the server whose path is p, under p, or above p (those held are sent now). */
  private async released(...paths: unknown[]): Promise<void> {
    if (this.releasing.size === 0) return
    const wait: Promise<void>[] = []
    for (const r of this.releasing.values()) {
      for (const p of paths) {
        if (typeof p === 'string' && (r.path === p || r.path.startsWith(p + '/') || p.startsWith(r.path + '/'))) wait.push(r)
      }
    }

    if (wait.length > 0 && this.held.length > 0) this.sendHeld()
    await Promise.all(wait)
  }

  // ---- namespace and attribute changes -----------------------------------

  async truncate(path: string, size: number, caller: Caller): Promise<void> {
    this.forgetReadahead()
    await this.change('Truncate', {path, size, caller: this.caller(caller)})
  }

  async ftruncate(path: string, fh: number, size: number, caller: Caller): Promise<void> {
    const h = this.handle(fh)
    await this.settle()
    this.forgetReadahead()
    const r = await this.remote(h)
    await this.change('Ftruncate', {path, fh: r.remote, size, caller: this.caller(caller)})
  }

  async mknod(path: string, mode: number, rdev: number, caller: Caller): Promise<void> {
    await this.change('Mknod', {path, mode, rdev, caller: this.caller(caller)}, keepMade(path), (n, r) => n.added(path, false, madeStat(r)))
  }

  async mkdir(path: string, mode: number, caller: Caller): Promise<void> {
    await this.change('Mkdir', {path, mode, caller: this.caller(caller)}, keepMade(path), n => n.added(path, true))
  }

  async symlink(target: string, path: string, caller: Caller): Promise<void> {
    await this.change('Symlink', {from: target, to: path, caller: this.caller(caller)}, keepMade(path), (n, r) => n.added(path, false, madeStat(r)))
  }

  async link(existing: string, path: string, caller: Caller): Promise<void> {
    await this.change('Link', {from: existing, to: path, caller: this.caller(caller)})
  }

  async unlink(path: string, caller: Caller): Promise<void> {
    await this.change('Unlink', {path, caller: this.caller(caller)}, keepMade(path), n => n.removed(path))
  }

  async rmdir(path: string, caller: Caller): Promise<void> {
    await this.change('Rmdir', {path, caller: this.caller(caller)}, keepMade(path), n => n.removed(path))
  }

  async rename(from: string, to: string, caller: Caller): Promise<void> {
    await this.change('Rename', {from, to, caller: this.caller(caller)})
    for (const h of this.handles.values()) {
      if (h.path === from) h.path = to
      else if (h.path.startsWith(from + '/')) h.path = to + h.path.slice(from.length)
    }
  }

  async chmod(path: string, mode: number, caller: Caller): Promise<void> {
    await this.change('Chmod', {path, mode, caller: this.caller(caller)})
  }

  async chown(path: string, uid: number, gid: number, caller: Caller): Promise<void> {
    const id = (v: number) => (v === 0xFFFF_FFFF ? -1 : v)
    await this.change('Chown', {path, uid: id(uid), gid: id(gid), caller: this.caller(caller)})
  }

  async utimens(path: string, atime: TimeSpec, mtime: TimeSpec, caller: Caller): Promise<void> {
    await this.change('Utimens', {path, atime: wireTime(atime), mtime: wireTime(mtime), caller: this.caller(caller)})
  }

  async setxattr(path: string, name: string, value: Buffer, flags: number, caller: Caller): Promise<void> {
    await this.change('Setxattr', {path, name, value, flags, caller: this.caller(caller)})
  }

  async removexattr(path: string, name: string, caller: Caller): Promise<void> {
    await this.change('Removexattr', {path, name, caller: this.caller(caller)})
  }

  // ---- lifecycle ---------------------------------------------------------

  async sync(): Promise<void> {
    if (this.held.length > 0) this.sendHeld()
    await Promise.all(this.releasing.values())
    await this.call('Sync', {path: '/'})
  }

  async close(): Promise<void> {
    for (const [fh, h] of [...this.handles]) await this.release(h.path, fh).catch(() => {})
    if (this.held.length > 0) this.sendHeld()
    await Promise.all(this.releasing.values())
    this.conn.close()
  }
}
