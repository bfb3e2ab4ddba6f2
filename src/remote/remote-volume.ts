/**
 * The Volume API over the network: what `paciofs mount --server` puts under
 * the FUSE adapter. Each operation is one RPC (reads and writes in chunks of
 * at most MAX_CHUNK). File handles are the client's own numbers mapped to the
 * server's: when the session had to be opened anew (the server restarted, or
 * the connection was re-established) a handle is reopened by its path on its
 * next use, without O_TRUNC.
 */
import {constants as C, type BigIntStats, type StatsFs} from 'node:fs'
import type {Caller, TimeSpec, Volume} from '../volume/types.js'
import type {Connection} from './connection.js'
import {errnoError, statfsFromWire, statFromWire} from './wire.js'

interface Handle {
  path: string
  flags: number
  remote: number
  generation: number
}

const wireTime = (t: TimeSpec): string => (typeof t === 'bigint' ? t.toString() : t)

export class RemoteVolume implements Volume {
  private readonly handles = new Map<number, Handle>()
  private nextFh = 1

  constructor(private readonly conn: Connection) {}

  private caller(c: Caller) {
    return {uid: c.uid, gid: c.gid, pid: c.pid}
  }

  private add(path: string, flags: number, remote: number): number {
    const fh = this.nextFh++
    if (this.nextFh > 0x7FFF_FFFF) this.nextFh = 1
    this.handles.set(fh, {path, flags, remote, generation: this.conn.generation})
    return fh
  }

  /** The server's handle for fh, reopened if the session changed since it was opened. */
  private async remote(fh: number): Promise<Handle> {
    const h = this.handles.get(fh)
    if (!h) throw errnoError('EBADF', `no open file handle ${fh}`)
    if (h.generation !== this.conn.generation) {
      const r = await this.conn.call('Open', {path: h.path, flags: h.flags & ~(C.O_TRUNC | C.O_CREAT | C.O_EXCL), mode: 0, caller: {uid: 0, gid: 0, pid: 0}})
      h.remote = Number(r.fh)
      h.generation = this.conn.generation
    }

    return h
  }

  // ---- reads -------------------------------------------------------------

  async getattr(path: string): Promise<BigIntStats> {
    return statFromWire((await this.conn.call('Getattr', {path})).stat)
  }

  async fgetattr(path: string, fh: number): Promise<BigIntStats> {
    if (!this.handles.has(fh)) return this.getattr(path)
    const h = await this.remote(fh)
    return statFromWire((await this.conn.call('Fgetattr', {path, fh: h.remote})).stat)
  }

  async access(path: string, mode: number): Promise<void> {
    await this.conn.call('Access', {path, mode})
  }

  async statfs(path: string): Promise<StatsFs> {
    return statfsFromWire(await this.conn.call('Statfs', {path}) as never)
  }

  async readdir(path: string): Promise<string[]> {
    return (await this.conn.call('Readdir', {path})).names
  }

  async readlink(path: string): Promise<string> {
    return (await this.conn.call('Readlink', {path})).text
  }

  async getxattr(path: string, name: string): Promise<Buffer> {
    return (await this.conn.call('Getxattr', {path, name})).data
  }

  async listxattr(path: string): Promise<string[]> {
    return (await this.conn.call('Listxattr', {path})).names
  }

  // ---- file handles ------------------------------------------------------

  async open(path: string, flags: number, caller: Caller): Promise<number> {
    const r = await this.conn.call('Open', {path, flags, caller: this.caller(caller)})
    return this.add(path, flags, Number(r.fh))
  }

  async create(path: string, mode: number, flags: number, caller: Caller): Promise<number> {
    const r = await this.conn.call('Create', {path, flags, mode, caller: this.caller(caller)})
    return this.add(path, flags, Number(r.fh))
  }

  async read(path: string, fh: number, buf: Buffer, len: number, pos: number): Promise<number> {
    let done = 0
    while (done < len) {
      const h = await this.remote(fh)
      const want = Math.min(len - done, this.conn.maxChunk)
      const data: Buffer = (await this.conn.call('Read', {path, fh: h.remote, length: want, offset: pos + done})).data
      data.copy(buf, done)
      done += data.length
      if (data.length < want) break
    }

    return done
  }

  async write(path: string, fh: number, buf: Buffer, len: number, pos: number, caller: Caller): Promise<number> {
    let done = 0
    while (done < len) {
      const h = await this.remote(fh)
      const n = Math.min(len - done, this.conn.maxChunk)
      const r = await this.conn.call('Write', {path, fh: h.remote, data: buf.subarray(done, done + n), offset: pos + done, caller: this.caller(caller)})
      done += r.count
      if (r.count < n) break
    }

    return done
  }

  async flush(path: string, fh: number): Promise<void> {
    const h = await this.remote(fh)
    await this.conn.call('Flush', {path, fh: h.remote})
  }

  async fsync(path: string, fh: number, datasync: boolean): Promise<void> {
    const h = await this.remote(fh)
    await this.conn.call('Fsync', {path, fh: h.remote, datasync})
  }

  async release(path: string, fh: number): Promise<void> {
    const h = this.handles.get(fh)
    if (!h) throw errnoError('EBADF', `no open file handle ${fh}`)
    this.handles.delete(fh)
    if (h.generation !== this.conn.generation) return // the server released it when its session ended
    await this.conn.call('Release', {path, fh: h.remote})
  }

  // ---- namespace and attribute changes -----------------------------------

  async truncate(path: string, size: number, caller: Caller): Promise<void> {
    await this.conn.call('Truncate', {path, size, caller: this.caller(caller)})
  }

  async ftruncate(path: string, fh: number, size: number, caller: Caller): Promise<void> {
    const h = await this.remote(fh)
    await this.conn.call('Ftruncate', {path, fh: h.remote, size, caller: this.caller(caller)})
  }

  async mknod(path: string, mode: number, rdev: number, caller: Caller): Promise<void> {
    await this.conn.call('Mknod', {path, mode, rdev, caller: this.caller(caller)})
  }

  async mkdir(path: string, mode: number, caller: Caller): Promise<void> {
    await this.conn.call('Mkdir', {path, mode, caller: this.caller(caller)})
  }

  async symlink(target: string, path: string, caller: Caller): Promise<void> {
    await this.conn.call('Symlink', {from: target, to: path, caller: this.caller(caller)})
  }

  async link(existing: string, path: string, caller: Caller): Promise<void> {
    await this.conn.call('Link', {from: existing, to: path, caller: this.caller(caller)})
  }

  async unlink(path: string, caller: Caller): Promise<void> {
    await this.conn.call('Unlink', {path, caller: this.caller(caller)})
  }

  async rmdir(path: string, caller: Caller): Promise<void> {
    await this.conn.call('Rmdir', {path, caller: this.caller(caller)})
  }

  async rename(from: string, to: string, caller: Caller): Promise<void> {
    await this.conn.call('Rename', {from, to, caller: this.caller(caller)})
    for (const h of this.handles.values()) {
      if (h.path === from) h.path = to
      else if (h.path.startsWith(from + '/')) h.path = to + h.path.slice(from.length)
    }
  }

  async chmod(path: string, mode: number, caller: Caller): Promise<void> {
    await this.conn.call('Chmod', {path, mode, caller: this.caller(caller)})
  }

  async chown(path: string, uid: number, gid: number, caller: Caller): Promise<void> {
    const id = (v: number) => (v === 0xFFFF_FFFF ? -1 : v)
    await this.conn.call('Chown', {path, uid: id(uid), gid: id(gid), caller: this.caller(caller)})
  }

  async utimens(path: string, atime: TimeSpec, mtime: TimeSpec, caller: Caller): Promise<void> {
    await this.conn.call('Utimens', {path, atime: wireTime(atime), mtime: wireTime(mtime), caller: this.caller(caller)})
  }

  async setxattr(path: string, name: string, value: Buffer, flags: number, caller: Caller): Promise<void> {
    await this.conn.call('Setxattr', {path, name, value, flags, caller: this.caller(caller)})
  }

  async removexattr(path: string, name: string, caller: Caller): Promise<void> {
    await this.conn.call('Removexattr', {path, name, caller: this.caller(caller)})
  }

  // ---- lifecycle ---------------------------------------------------------

  async sync(): Promise<void> {
    await this.conn.call('Sync', {path: '/'})
  }

  async close(): Promise<void> {
    for (const [fh, h] of [...this.handles]) await this.release(h.path, fh).catch(() => {})
    this.conn.close()
  }
}
