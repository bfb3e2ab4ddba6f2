/**
 * fuse-native callbacks -> Volume API. Each callback takes the caller from
 * the FUSE context, calls the volume, and answers the kernel with 0 / a
 * result, or a negative errno. Nothing here knows how the volume records.
 *
 * Needs the patched fuse-native (patches/): context(), BigInt stats with
 * nanosecond times, utimens with BigInt ns / UTIME_NOW / UTIME_OMIT, and
 * create(path, mode, flags, cb).
 */
import type {BigIntStats} from 'node:fs'
import type {Caller, TimeSpec, Volume} from '../volume/types.js'
import {EIO, toErrno} from './errno.js'

type Cb = (...args: any[]) => void

export interface FuseContext {
  context(): {uid: number; gid: number; pid: number}
}

interface UtimeSentinels {
  UTIME_NOW: bigint
  UTIME_OMIT: bigint
}

/** Observers of adapter-level failures (a crash of an op never reaches the kernel as anything but EIO). */
export interface AdapterEvents {
  onInternalError?(op: string, error: unknown): void
}

function statfsOf(s: {bsize: number; blocks: number; bfree: number; bavail: number; files: number; ffree: number}) {
  return {bsize: s.bsize, frsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail,
    files: s.files, ffree: s.ffree, favail: s.ffree, fsid: 0x70616369, flag: 0, namemax: 255}
}

export function makeOps(volume: Volume, fuse: FuseContext, sentinels: UtimeSentinels, events: AdapterEvents = {}): Record<string, Cb> {
  const caller = (): Caller => {
    const c = fuse.context()
    return {uid: c.uid, gid: c.gid, pid: c.pid}
  }

  const fail = (op: string, error: unknown): number => {
    const n = toErrno(error)
    if (n === EIO) events.onInternalError?.(op, error)
    return n
  }

  /** Starts an op; a synchronous throw becomes a rejection, never an exception in the FUSE dispatcher. */
  const start = <T>(work: () => Promise<T>): Promise<T> => new Promise<T>(resolve => resolve(work()))

  /** Runs an op and answers cb(0) / cb(errno). */
  const run = (op: string, cb: Cb, work: () => Promise<unknown>): void => {
    start(work).then(() => cb(0), error => cb(fail(op, error)))
  }

  /** Runs an op and answers cb(0, value) / cb(errno). */
  const value = <T>(op: string, cb: Cb, work: () => Promise<T>): void => {
    start(work).then(v => cb(0, v), error => cb(fail(op, error)))
  }

  /** Runs a read/write and answers cb(bytes) / cb(errno). */
  const bytes = (op: string, cb: Cb, work: () => Promise<number>): void => {
    start(work).then(n => cb(n), error => cb(fail(op, error)))
  }

  /** A state change: the caller is read now (the FUSE context is valid only synchronously), then the op runs. */
  const change = (op: string, cb: Cb, work: (who: Caller) => Promise<unknown>): void => {
    const who = caller()
    run(op, cb, () => work(who))
  }

  const time = (t: bigint): TimeSpec => (t === sentinels.UTIME_NOW ? 'now' : t === sentinels.UTIME_OMIT ? 'omit' : t)

  return {
    init: (cb: Cb) => cb(0),
    getattr: (path: string, cb: Cb) => value<BigIntStats>('getattr', cb, () => volume.getattr(path)),
    fgetattr: (path: string, fh: number, cb: Cb) => value<BigIntStats>('fgetattr', cb, () => volume.fgetattr(path, fh)),
    access: (path: string, mode: number, cb: Cb) => run('access', cb, () => volume.access(path, mode)),
    statfs: (path: string, cb: Cb) => value('statfs', cb, async () => statfsOf(await volume.statfs(path))),
    readdir: (path: string, cb: Cb) => value('readdir', cb, () => volume.readdir(path)),
    readlink: (path: string, cb: Cb) => value('readlink', cb, () => volume.readlink(path)),

    open: (path: string, flags: number, cb: Cb) => {
      const who = caller()
      value('open', cb, () => volume.open(path, flags, who))
    },
    create: (path: string, mode: number, flags: number, cb: Cb) => {
      const who = caller()
      value('create', cb, () => volume.create(path, mode, flags, who))
    },
    read: (path: string, fh: number, buf: Buffer, len: number, pos: number, cb: Cb) => {
      bytes('read', cb, () => volume.read(path, fh, buf, len, pos))
    },
    write: (path: string, fh: number, buf: Buffer, len: number, pos: number, cb: Cb) => {
      const who = caller()
      bytes('write', cb, () => volume.write(path, fh, buf, len, pos, who))
    },
    flush: (path: string, fh: number, cb: Cb) => run('flush', cb, () => volume.flush(path, fh)),
    fsync: (path: string, datasync: number | boolean, fh: number, cb: Cb) => run('fsync', cb, () => volume.fsync(path, fh, Boolean(datasync))),
    fsyncdir: (_path: string, _datasync: unknown, _fh: number, cb: Cb) => run('fsyncdir', cb, () => volume.sync()),
    release: (path: string, fh: number, cb: Cb) => run('release', cb, () => volume.release(path, fh)),

    truncate: (path: string, size: number, cb: Cb) => change('truncate', cb, who => volume.truncate(path, size, who)),
    ftruncate: (path: string, fh: number, size: number, cb: Cb) => change('ftruncate', cb, who => volume.ftruncate(path, fh, size, who)),
    mknod: (path: string, mode: number, rdev: number, cb: Cb) => change('mknod', cb, who => volume.mknod(path, mode, rdev, who)),
    mkdir: (path: string, mode: number, cb: Cb) => change('mkdir', cb, who => volume.mkdir(path, mode, who)),
    symlink: (target: string, path: string, cb: Cb) => change('symlink', cb, who => volume.symlink(target, path, who)),
    link: (existing: string, path: string, cb: Cb) => change('link', cb, who => volume.link(existing, path, who)),
    unlink: (path: string, cb: Cb) => change('unlink', cb, who => volume.unlink(path, who)),
    rmdir: (path: string, cb: Cb) => change('rmdir', cb, who => volume.rmdir(path, who)),
    rename: (from: string, to: string, cb: Cb) => change('rename', cb, who => volume.rename(from, to, who)),
    chmod: (path: string, mode: number, cb: Cb) => change('chmod', cb, who => volume.chmod(path, mode, who)),
    chown: (path: string, uid: number, gid: number, cb: Cb) => change('chown', cb, who => volume.chown(path, uid, gid, who)),
    utimens: (path: string, atime: bigint, mtime: bigint, cb: Cb) => change('utimens', cb, who => volume.utimens(path, time(atime), time(mtime), who)),
    setxattr: (path: string, name: string, val: Buffer, _position: number, flags: number, cb: Cb) => change('setxattr', cb, who => volume.setxattr(path, name, Buffer.from(val), flags, who)),
    getxattr: (path: string, name: string, _position: number, cb: Cb) => value('getxattr', cb, () => volume.getxattr(path, name)),
    listxattr: (path: string, cb: Cb) => value('listxattr', cb, () => volume.listxattr(path)),
    removexattr: (path: string, name: string, cb: Cb) => change('removexattr', cb, who => volume.removexattr(path, name, who)),
  }
}
