/**
 * A replica's volume as clients see it: reads are served from the replica's
 * own backing directory (the same code as a local volume's reads); every
 * change is refused with EROFS, naming the primary, because only the
 * primary orders new records onto the ledger.
 */
import {constants as C} from 'node:fs'
import type {BigIntStats, StatsFs} from 'node:fs'
import {errnoError} from '../remote/wire.js'
import type {Caller, TimeSpec, Volume} from '../volume/types.js'

const O_ACCMODE = 3

export class ReadOnlyVolume implements Volume {
  constructor(private readonly inner: Volume, private readonly primary: () => string) {}

  private refuse(op: string): never {
    throw errnoError('EROFS', `${op}: this server holds a read-only replica; write through the primary at ${this.primary()}`)
  }

  getattr(path: string): Promise<BigIntStats> { return this.inner.getattr(path) }
  fgetattr(path: string, fh: number): Promise<BigIntStats> { return this.inner.fgetattr(path, fh) }
  access(path: string, mode: number): Promise<void> {
    if ((mode & C.W_OK) !== 0) return Promise.reject(errnoError('EROFS', 'read-only replica'))
    return this.inner.access(path, mode)
  }

  statfs(path: string): Promise<StatsFs> { return this.inner.statfs(path) }
  readdir(path: string): Promise<string[]> { return this.inner.readdir(path) }
  readlink(path: string): Promise<string> { return this.inner.readlink(path) }
  open(path: string, flags: number, caller: Caller): Promise<number> {
    if ((flags & O_ACCMODE) !== C.O_RDONLY || (flags & C.O_TRUNC) !== 0) return Promise.reject(this.catching('open for writing'))
    return this.inner.open(path, flags, caller)
  }

  private catching(op: string): unknown {
    try {
      this.refuse(op)
    } catch (error) {
      return error
    }
  }

  create(): Promise<number> { return Promise.reject(this.catching('create')) }
  read(path: string, fh: number, buf: Buffer, len: number, pos: number): Promise<number> { return this.inner.read(path, fh, buf, len, pos) }
  readOffThread(path: string, fh: number, buf: Buffer, len: number, pos: number): Promise<number> { return (this.inner.readOffThread ?? this.inner.read).call(this.inner, path, fh, buf, len, pos) }
  write(): Promise<number> { return Promise.reject(this.catching('write')) }
  flush(path: string, fh: number): Promise<void> { return this.inner.flush(path, fh) }
  fsync(path: string, fh: number, datasync: boolean): Promise<void> { return this.inner.fsync(path, fh, datasync) }
  release(path: string, fh: number): Promise<void> { return this.inner.release(path, fh) }
  truncate(): Promise<void> { return Promise.reject(this.catching('truncate')) }
  ftruncate(): Promise<void> { return Promise.reject(this.catching('truncate')) }
  mknod(): Promise<void> { return Promise.reject(this.catching('mknod')) }
  mkdir(): Promise<void> { return Promise.reject(this.catching('mkdir')) }
  symlink(): Promise<void> { return Promise.reject(this.catching('symlink')) }
  link(): Promise<void> { return Promise.reject(this.catching('link')) }
  unlink(): Promise<void> { return Promise.reject(this.catching('unlink')) }
  rmdir(): Promise<void> { return Promise.reject(this.catching('rmdir')) }
  rename(): Promise<void> { return Promise.reject(this.catching('rename')) }
  chmod(): Promise<void> { return Promise.reject(this.catching('chmod')) }
  chown(): Promise<void> { return Promise.reject(this.catching('chown')) }
  utimens(_p: string, _a: TimeSpec, _m: TimeSpec): Promise<void> { return Promise.reject(this.catching('utimens')) }
  setxattr(): Promise<void> { return Promise.reject(this.catching('setxattr')) }
  getxattr(path: string, name: string): Promise<Buffer> { return this.inner.getxattr(path, name) }
  listxattr(path: string): Promise<string[]> { return this.inner.listxattr(path) }
  removexattr(): Promise<void> { return Promise.reject(this.catching('removexattr')) }
  sync(): Promise<void> { return Promise.resolve() }
  close(): Promise<void> { return this.inner.close() }
}
