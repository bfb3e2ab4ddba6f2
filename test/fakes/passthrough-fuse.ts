// A tiny fuse-native passthrough used by test/integration/fuse-native and by
// the fio measurements. It must run in its OWN process: a process must never
// touch its own FUSE mount synchronously (the kernel would wait for a reply
// that the blocked event loop can never send).
//
//   node --import tsx test/fakes/passthrough-fuse.ts <backing-dir> <mountpoint> [json-config]
//
// json-config: { options?: string[], timeout?: number, slowMs?: number,
//                sleepMs?: number, log?: boolean, debug?: boolean }
// When started with an IPC channel it reports events with process.send():
//   {ev:'ready'}, {ev:'write', size}, {ev:'create', flags, mode, ctx},
//   {ev:'late-read', ...}, {ev:'uncaught', message}
//
// Test hooks (names in the mount root):
//   /slow      read waits cfg.slowMs before reading (a handler that replies late)
//   /late      backed by a FIFO opened O_RDWR: the read sits in the libuv
//              thread pool holding the buffer pointer until someone writes to
//              the FIFO (a late reply that writes into the read buffer)
//   /sleep-*   read waits cfg.sleepMs (concurrency check)
//   /numstat   synthetic file answered with a plain Number/Date stat
//   /twice     getattr calls its callback twice
//   /bigino*   inode number reported as the backing ino + 2^40 (needs -o use_ino)
// statfs reports synthetic counts above 2^32.
import fs from 'node:fs'
import path from 'node:path'
import {createRequire} from 'node:module'

const require = createRequire(import.meta.url)
// eslint-disable-next-line @typescript-eslint/no-var-requires
const Fuse = require('fuse-native')

type Cb = (...args: any[]) => void
interface Config {
  options?: string[]
  timeout?: number
  slowMs?: number
  sleepMs?: number
  log?: boolean
  debug?: boolean
  maxWrite?: number
}

const [backing, mnt, rawCfg] = process.argv.slice(2)
if (!backing || !mnt) {
  console.error('usage: passthrough-fuse.ts <backing-dir> <mountpoint> [json-config]')
  process.exit(2)
}
const cfg: Config = rawCfg ? JSON.parse(rawCfg) : {}
const emit = (msg: object): void => {
  if (cfg.log !== false && process.send && process.connected) process.send(msg)
}

export const INO_OFFSET = 1n << 40n
const real = (p: string): string => path.join(backing, p)
const errno = (err: NodeJS.ErrnoException | null): number => (err ? (err.errno ?? Fuse.EIO) : 0)

// Nanosecond timestamps set through utimens. Node's fs.utimes only takes
// float seconds, so the exact values are kept here and served by getattr.
const times = new Map<string, {atimeNs: bigint; mtimeNs: bigint}>()

function toNs(t: bigint | number, current: bigint): bigint {
  if (t === Fuse.UTIME_OMIT) return current
  if (t === Fuse.UTIME_NOW) return BigInt(Date.now()) * 1_000_000n
  if (typeof t === 'number') return BigInt(Math.round(t)) * 1_000_000n // unpatched: ms
  return t
}

function decorate(p: string, st: fs.BigIntStats): fs.BigIntStats | Record<string, unknown> {
  const t = times.get(p)
  const name = path.basename(p)
  const bigIno = name.startsWith('bigino')
  // The common case hands fuse-native exactly what fs.lstat(p, {bigint: true}) returned.
  if (!t && !bigIno && name !== 'late') return LEGACY ? toNumberStat(st) : st
  const out: Record<string, unknown> = {...st}
  if (bigIno) out.ino = st.ino + INO_OFFSET
  if (t) Object.assign(out, t)
  if (name === 'late') Object.assign(out, {mode: BigInt(fs.constants.S_IFREG | 0o644), size: 4096n})
  return LEGACY ? toNumberStat(out) : out
}

// Stock fuse-native 2.2.6 throws on BigInt stats; to measure its other
// defects one by one, the passthrough then answers with Number stats.
const LEGACY = typeof Fuse.UTIME_NOW !== 'bigint'
function toNumberStat(st: Record<string, any>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const k of ['mode', 'uid', 'gid', 'size', 'dev', 'nlink', 'ino', 'rdev', 'blksize', 'blocks']) out[k] = Number(st[k])
  for (const k of ['atime', 'mtime', 'ctime']) out[k] = new Date(Number(st[k + 'Ns'] / 1_000_000n))
  return out
}

const numstat = () => ({
  mode: fs.constants.S_IFREG | 0o644,
  uid: 0,
  gid: 0,
  size: 3,
  nlink: 1,
  ino: 42,
  atime: new Date(Date.UTC(2010, 0, 2, 3, 4, 5, 678)),
  mtime: new Date(Date.UTC(2011, 1, 3, 4, 5, 6, 789)),
  ctime: new Date(Date.UTC(2012, 2, 4, 5, 6, 7, 890)),
})

const ops = {
  getattr(p: string, cb: Cb) {
    if (p === '/numstat') return cb(0, numstat())
    if (p === '/twice') {
      // A buggy handler answering twice: the second answer must be dropped.
      return fs.lstat(real('/'), {bigint: true}, (err, st) => {
        if (err) return cb(errno(err))
        cb(0, decorate('/', st))
        cb(0, decorate('/', st))
      })
    }
    fs.lstat(real(p), {bigint: true}, (err, st) => (err ? cb(errno(err)) : cb(0, decorate(p, st))))
  },
  fgetattr(p: string, _fd: number, cb: Cb) {
    ops.getattr(p, cb)
  },
  readdir(p: string, cb: Cb) {
    fs.readdir(real(p), (err, names) => {
      if (err) return cb(errno(err))
      if (p === '/') names.push('numstat')
      cb(0, names)
    })
  },
  statfs(_p: string, cb: Cb) {
    const big = (n: bigint) => (LEGACY ? Number(n) : n)
    cb(0, {
      bsize: 4096,
      frsize: 4096,
      blocks: big((1n << 40n) + 1n),
      bfree: big((1n << 39n) + 2n),
      bavail: big((1n << 38n) + 3n),
      files: big((1n << 36n) + 4n),
      ffree: big((1n << 35n) + 5n),
      favail: big((1n << 34n) + 6n),
      fsid: 0,
      flag: 0,
      namemax: 255,
    })
  },
  open(p: string, flags: number, cb: Cb) {
    if (p === '/numstat') return cb(0, 0)
    if (path.basename(p) === 'late') return fs.open(real(p), fs.constants.O_RDWR, (err, fd) => cb(errno(err), fd))
    fs.open(real(p), flags, (err, fd) => cb(errno(err), fd))
  },
  // Four parameters: the patched binding then passes fuse_file_info.flags.
  create(p: string, mode: number, flags: number | Cb, cb?: Cb) {
    const ctx = typeof Fuse.prototype.context === 'function' ? fuse.context() : null
    const legacy = typeof flags === 'function' // stock binding: create(path, mode, cb), no flags
    if (legacy) {
      cb = flags as Cb
      flags = fs.constants.O_CREAT | fs.constants.O_RDWR
    }
    const done = cb as Cb
    emit({ev: 'create', path: p, mode, flags: legacy ? null : flags, ctx})
    fs.open(real(p), flags as number, mode, (err, fd) => {
      if (err) return done(errno(err))
      if (!ctx || ctx.uid === 0) return done(0, fd)
      fs.fchown(fd, ctx.uid, ctx.gid, (err) => done(errno(err), fd))
    })
  },
  read(p: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) {
    const name = path.basename(p)
    if (cfg.log) emit({ev: 'read', size: len})
    const doRead = () => fs.read(fd, buf, 0, len, pos, (err, n) => cb(err ? errno(err) : n))
    if (p === '/numstat') return cb(buf.write('abc'.slice(pos)))
    if (name === 'late') {
      return fs.read(fd, buf, 0, len, null, (err, n) => {
        emit({ev: 'late-read', n, err: err?.code, sample: buf.length ? buf.subarray(0, 4).toString('hex') : ''})
        cb(err ? errno(err) : n)
      })
    }
    if (name === 'slow') return setTimeout(doRead, cfg.slowMs ?? 1000)
    if (name.startsWith('sleep-')) return setTimeout(doRead, cfg.sleepMs ?? 300)
    doRead()
  },
  write(_p: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) {
    if (cfg.log) emit({ev: 'write', size: len})
    fs.write(fd, buf, 0, len, pos, (err, n) => cb(err ? errno(err) : n))
  },
  release(p: string, fd: number, cb: Cb) {
    if (p === '/numstat') return cb(0)
    if (path.basename(p) === 'late') return cb(0) // an fs.read may still be blocked on it
    fs.close(fd, (err) => cb(errno(err)))
  },
  flush(_p: string, _fd: number, cb: Cb) {
    cb(0)
  },
  fsync(_p: string, _datasync: number, fd: number, cb: Cb) {
    fs.fsync(fd, (err) => cb(errno(err)))
  },
  truncate(p: string, size: number, cb: Cb) {
    fs.truncate(real(p), size, (err) => cb(errno(err)))
  },
  ftruncate(_p: string, fd: number, size: number, cb: Cb) {
    fs.ftruncate(fd, size, (err) => cb(errno(err)))
  },
  utimens(p: string, atime: bigint | number, mtime: bigint | number, cb: Cb) {
    fs.lstat(real(p), {bigint: true}, (err, st) => {
      if (err) return cb(errno(err))
      const prev = times.get(p) ?? {atimeNs: st.atimeNs, mtimeNs: st.mtimeNs}
      const next = {atimeNs: toNs(atime, prev.atimeNs), mtimeNs: toNs(mtime, prev.mtimeNs)}
      times.set(p, next)
      const secs = (ns: bigint) => Number(ns) / 1e9
      fs.utimes(real(p), secs(next.atimeNs), secs(next.mtimeNs), (err) => cb(errno(err)))
    })
  },
  chmod(p: string, mode: number, cb: Cb) {
    fs.chmod(real(p), mode, (err) => cb(errno(err)))
  },
  chown(p: string, uid: number, gid: number, cb: Cb) {
    fs.lchown(real(p), uid, gid, (err) => cb(errno(err)))
  },
  unlink(p: string, cb: Cb) {
    times.delete(p)
    fs.unlink(real(p), (err) => cb(errno(err)))
  },
  rename(src: string, dest: string, cb: Cb) {
    fs.rename(real(src), real(dest), (err) => cb(errno(err)))
  },
  mkdir(p: string, mode: number, cb: Cb) {
    fs.mkdir(real(p), mode, (err) => cb(errno(err)))
  },
  rmdir(p: string, cb: Cb) {
    fs.rmdir(real(p), (err) => cb(errno(err)))
  },
  symlink(target: string, p: string, cb: Cb) {
    fs.symlink(target, real(p), (err) => cb(errno(err)))
  },
  readlink(p: string, cb: Cb) {
    fs.readlink(real(p), (err, target) => cb(errno(err), target))
  },
}

const fuse = new Fuse(mnt, ops, {
  force: true,
  mkdir: true,
  debug: !!cfg.debug,
  timeout: cfg.timeout,
  options: cfg.options ?? [],
  maxWrite: cfg.maxWrite,
})

process.on('uncaughtException', (err) => {
  emit({ev: 'uncaught', message: String(err?.stack ?? err)})
  console.error('passthrough-fuse: uncaught', err)
  Fuse.unmount(mnt, () => process.exit(70))
})

let stopping = false
function stop(): void {
  if (stopping) return
  stopping = true
  fuse.unmount(() => process.exit(0))
  setTimeout(() => process.exit(0), 3000).unref()
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
process.on('disconnect', stop)

fuse.mount((err: Error | null) => {
  if (err) {
    console.error('passthrough-fuse: mount failed:', err.message)
    process.exit(1)
  }
  emit({ev: 'ready'})
  if (!process.send) console.error(`passthrough-fuse: ${backing} mounted on ${mnt}`)
})
