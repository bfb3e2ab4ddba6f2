/**
 * fuse-native 2.2.6 as patched by patches/fuse-native+2.2.6.patch and built
 * from source against Debian's libfuse2 by scripts/build-fuse.js (postinstall).
 *
 * JS contract the PacioFS FUSE adapter codes against:
 *
 *  - Mount options. `new Fuse(mnt, ops, opts)` always mounts with
 *    `-o big_writes,max_write=131072` (128 KiB is the most libfuse2 and the
 *    kernel accept without the max_pages extension), then the options derived
 *    from the named opts (debug, allowOther, ...), then `opts.options`
 *    (string[], e.g. ['default_permissions', 'allow_other', 'use_ino'])
 *    verbatim; later options win, so a caller may lower max_write.
 *    `force`, `mkdir`, `debug` behave as before.
 *  - Caller identity. `fuse.context()` returns `{uid, gid, pid, umask}` of the
 *    process that caused the operation currently being dispatched (libfuse's
 *    fuse_get_context(), captured on the FUSE thread before the hand-off to the
 *    JS thread). It is valid synchronously at the start of any op handler,
 *    before the handler awaits anything; outside a dispatch it returns null.
 *  - utimens(path, atime, mtime, cb): atime/mtime are BigInt nanoseconds since
 *    the Unix epoch, or the sentinels `Fuse.UTIME_NOW` / `Fuse.UTIME_OMIT`
 *    (BigInts outside the range of any struct timespec, so they never collide
 *    with a real time). libfuse's flag_utime_omit_ok is set, so `touch -a`
 *    arrives as (t, UTIME_OMIT) and `touch` as (UTIME_NOW, UTIME_NOW).
 *  - getattr / fgetattr / readdir stats: either what
 *    `fs.lstat(p, {bigint: true})` returns (BigInt fields, atimeNs/mtimeNs/
 *    ctimeNs used with full nanosecond precision) or the old Number stats
 *    (Date or millisecond-number atime/mtime/ctime). Every field (ino, dev,
 *    nlink, size, blocks, mode, uid, gid, rdev, blksize) is passed as 64 bits
 *    and may be a number or a bigint. fgetattr(path, fd, cb) now calls
 *    ops.fgetattr (2.2.6 called ops.getattr).
 *  - statfs: every field (bsize, frsize, blocks, bfree, bavail, files, ffree,
 *    favail, fsid, flag, namemax) is 64 bits, number or bigint.
 *  - Timeouts: off unless `opts.timeout` is a positive number of milliseconds
 *    (the per-op object form `{default?, read?, ...}` is still accepted; it has
 *    no implicit default either). When a timeout fires the op answers
 *    -ETIMEDOUT; the handler's late reply is ignored. With a timeout set, read,
 *    write and setxattr handlers get a private copy of the data buffer, so a
 *    late handler (or an fs.read still in the libuv pool) never touches memory
 *    libfuse has freed; readlink/readdir/getxattr/listxattr results are only
 *    copied into libfuse's buffers while the op is still pending.
 *  - Each dispatched op accepts exactly one reply: a second call of its
 *    callback (late or buggy) is dropped, so the FUSE thread's semaphore is
 *    never posted twice.
 *  - create: `create(path, mode, cb)` as before when the handler declares 3
 *    parameters; `create(path, mode, flags, cb)` when `ops.create.length >= 4`,
 *    flags = fuse_file_info.flags (O_EXCL, O_TRUNC, access mode, ...).
 *    open(path, flags, cb) unchanged.
 *  - fuse_loop_mt (multi-threaded libfuse loop) as before: ops run
 *    concurrently; fh stays the 32-bit value returned by open/create.
 */
import {expect} from 'chai'
import {spawn} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import {createRequire} from 'node:module'
import {widenReadAhead} from '../../../src/app/readahead.js'
import {mountPassthrough, run, sleep, isMounted, type Mount} from './helpers.js'

const require = createRequire(import.meta.url)
const Fuse = require('fuse-native')

const INO_OFFSET = 1n << 40n
const mounts: string[] = []

async function readErr(p: string): Promise<NodeJS.ErrnoException | null> {
  try {
    await fs.promises.readFile(p)
    return null
  } catch (err) {
    return err as NodeJS.ErrnoException
  }
}

function ns(isoUtc: string, frac: bigint): bigint {
  return BigInt(Date.parse(isoUtc)) * 1_000_000n + frac
}

after(function () {
  for (const mnt of mounts) expect(isMounted(mnt), `${mnt} still mounted`).to.equal(false)
})

describe('fuse-native (patched) contract without a mount', () => {
  it('6. has no per-operation timeout unless opts.timeout is a positive number', () => {
    expect(new Fuse('/nonexistent', {}).timeout).to.equal(0)
    expect(new Fuse('/nonexistent', {}, {timeout: 0}).timeout).to.equal(0)
    expect(new Fuse('/nonexistent', {}, {timeout: 250}).timeout).to.equal(250)
  })

  it('2. context() is null outside an operation dispatch', () => {
    expect(new Fuse('/nonexistent', {}).context()).to.equal(null)
  })

  it('3. exports UTIME_NOW / UTIME_OMIT as distinct BigInts', () => {
    expect(typeof Fuse.UTIME_NOW).to.equal('bigint')
    expect(typeof Fuse.UTIME_OMIT).to.equal('bigint')
    expect(Fuse.UTIME_NOW).to.not.equal(Fuse.UTIME_OMIT)
  })

  it('1. mounts with big_writes,max_write=131072 and appends opts.options', () => {
    const f = new Fuse('/nonexistent', {}, {options: ['default_permissions', 'allow_other', 'use_ino'], debug: true})
    expect(f._fuseOptions()).to.equal('-obig_writes,max_write=131072,debug,default_permissions,allow_other,use_ino')
  })
})

describe('fuse-native (patched) on a real mount', function () {
  let m: Mount

  before(async () => {
    m = await mountPassthrough({log: true, sleepMs: 300, options: ['default_permissions', 'allow_other', 'use_ino']})
    mounts.push(m.mnt)
  })

  after(async () => {
    await m?.stop()
  })

  it('1. big_writes: a 1 MiB write reaches the handler in chunks larger than 4 KiB', async () => {
    const before = m.events.length
    const fd = fs.openSync(path.join(m.mnt, 'big'), 'w')
    fs.writeSync(fd, Buffer.alloc(1 << 20, 7))
    fs.closeSync(fd)
    const writes = () => m.events.slice(before).filter((e) => e.ev === 'write').map((e) => e.size as number)
    await m.waitFor(() => writes().reduce((a, b) => a + b, 0) >= 1 << 20, 10_000, '1 MiB of writes')
    expect(Math.max(...writes())).to.be.greaterThan(4096)
    expect(Math.max(...writes())).to.equal(131072)
    expect(fs.statSync(path.join(m.backing, 'big')).size).to.equal(1 << 20)
  })

  it('1. passes extra -o options through to the mount', () => {
    const line = fs
      .readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .find((l) => l.split(' ')[1] === m.mnt)
    expect(line).to.be.a('string')
    const opts = line!.split(' ')[3].split(',')
    expect(opts).to.include.members(['default_permissions', 'allow_other'])
  })

  it('2. context(): a file created by uid 65534 is owned by 65534', async () => {
    const file = path.join(m.mnt, 'by-nobody')
    const code = await new Promise<number | null>((resolve, reject) => {
      const p = spawn('/usr/bin/touch', [file], {uid: 65534, gid: 65534, stdio: 'inherit'})
      p.on('error', reject)
      p.on('exit', resolve)
    })
    const created = m.events.find((e) => e.ev === 'create' && e.path === '/by-nobody')
    expect(created?.ctx, 'context() inside create').to.include({uid: 65534, gid: 65534})
    expect(created!.ctx.pid).to.be.a('number').greaterThan(0)
    expect(fs.statSync(file).uid).to.equal(65534)
    expect(fs.statSync(file).gid).to.equal(65534)
    expect(fs.statSync(path.join(m.backing, 'by-nobody')).uid).to.equal(65534)
    expect(code, 'touch as 65534 (utimensat on its own file)').to.equal(0)
  })

  it('3. utimens: touch -a / touch -m set atime and mtime separately, to the nanosecond', async () => {
    const file = path.join(m.mnt, 'times')
    fs.writeFileSync(file, 'x')
    const env = {...process.env, TZ: 'UTC'}
    const mtime0 = fs.statSync(file, {bigint: true}).mtimeNs

    await run('touch', ['-a', '-d', '2001-02-03 04:05:06.123456789', file], {env})
    let st = fs.statSync(file, {bigint: true})
    expect(st.atimeNs).to.equal(ns('2001-02-03T04:05:06Z', 123456789n))
    expect(st.mtimeNs, 'touch -a must leave mtime alone').to.equal(mtime0)

    await run('touch', ['-m', '-d', '2002-03-04 05:06:07.987654321', file], {env})
    st = fs.statSync(file, {bigint: true})
    expect(st.atimeNs, 'touch -m must leave atime alone').to.equal(ns('2001-02-03T04:05:06Z', 123456789n))
    expect(st.mtimeNs).to.equal(ns('2002-03-04T05:06:07Z', 987654321n))

    const t0 = BigInt(Date.now() - 5000) * 1_000_000n
    await run('touch', [file]) // (UTIME_NOW, UTIME_NOW)
    st = fs.statSync(file, {bigint: true})
    expect(st.atimeNs > t0 && st.mtimeNs > t0, 'touch without -d sets both to now').to.equal(true)
  })

  it('4. getattr: BigInt stats keep nanosecond timestamps', async () => {
    const backingFile = path.join(m.backing, 'ns-stat')
    fs.writeFileSync(backingFile, 'hello')
    await run('touch', ['-d', '1999-12-31 23:59:58.000000001', backingFile], {env: {...process.env, TZ: 'UTC'}})
    const want = fs.statSync(backingFile, {bigint: true})
    const got = fs.statSync(path.join(m.mnt, 'ns-stat'), {bigint: true})
    expect(got.mtimeNs).to.equal(ns('1999-12-31T23:59:58Z', 1n))
    expect(got.mtimeNs).to.equal(want.mtimeNs)
    expect(got.atimeNs).to.equal(want.atimeNs)
    expect(got.ctimeNs).to.equal(want.ctimeNs)
    expect(got.size).to.equal(5n)
  })

  it('4. getattr: plain Number stats with Date times still work', () => {
    const st = fs.statSync(path.join(m.mnt, 'numstat'), {bigint: true})
    expect(st.mtimeNs).to.equal(BigInt(Date.UTC(2011, 1, 3, 4, 5, 6, 789)) * 1_000_000n)
    expect(st.atimeNs).to.equal(BigInt(Date.UTC(2010, 0, 2, 3, 4, 5, 678)) * 1_000_000n)
    expect(st.size).to.equal(3n)
    expect(st.ino).to.equal(42n)
    expect(fs.readFileSync(path.join(m.mnt, 'numstat'), 'utf8')).to.equal('abc')
  })

  it('5. ino above 2^32 and 64-bit sizes reach the caller', () => {
    const backingFile = path.join(m.backing, 'bigino-1')
    fs.writeFileSync(backingFile, '')
    fs.truncateSync(backingFile, 5 * 2 ** 30) // sparse, 5 GiB
    const want = fs.statSync(backingFile, {bigint: true})
    const got = fs.statSync(path.join(m.mnt, 'bigino-1'), {bigint: true})
    expect(got.ino).to.equal(want.ino + INO_OFFSET)
    expect(got.ino > 2n ** 32n).to.equal(true)
    expect(got.size).to.equal(5n * 2n ** 30n)
  })

  it('5. statfs: block and file counts above 2^32 reach the caller', () => {
    const st = fs.statfsSync(m.mnt, {bigint: true})
    expect(st.bsize).to.equal(4096n)
    expect(st.blocks).to.equal((1n << 40n) + 1n)
    expect(st.bfree).to.equal((1n << 39n) + 2n)
    expect(st.bavail).to.equal((1n << 38n) + 3n)
    expect(st.files).to.equal((1n << 36n) + 4n)
    expect(st.ffree).to.equal((1n << 35n) + 5n)
  })

  it('7. create(path, mode, flags, cb) receives the open flags', async () => {
    const {O_CREAT, O_EXCL, O_WRONLY, O_RDWR, O_TRUNC} = fs.constants
    const O_ACCMODE = 3 // not in fs.constants
    fs.closeSync(fs.openSync(path.join(m.mnt, 'excl'), O_CREAT | O_EXCL | O_WRONLY, 0o640))
    fs.closeSync(fs.openSync(path.join(m.mnt, 'trunc'), O_CREAT | O_TRUNC | O_RDWR, 0o600))
    const created = (p: string) => m.events.find((e) => e.ev === 'create' && e.path === p)
    const excl = await m.waitFor(() => created('/excl'), 5000, 'create /excl')
    const trunc = await m.waitFor(() => created('/trunc'), 5000, 'create /trunc')
    expect(excl?.flags, 'flags for O_CREAT|O_EXCL|O_WRONLY').to.be.a('number')
    expect(excl.flags & O_EXCL).to.equal(O_EXCL)
    expect(excl.flags & O_ACCMODE).to.equal(O_WRONLY)
    expect(trunc.flags & O_TRUNC).to.equal(O_TRUNC)
    expect(trunc.flags & O_ACCMODE).to.equal(O_RDWR)
    expect(fs.statSync(path.join(m.backing, 'excl')).mode & 0o777).to.equal(0o640 & ~process.umask())
  })

  it('runs operations concurrently (fuse_loop_mt)', async () => {
    const n = 8
    for (let i = 0; i < n; i++) fs.writeFileSync(path.join(m.backing, `sleep-${i}`), `data-${i}`)
    const t0 = Date.now()
    const outs = await Promise.all(
      Array.from({length: n}, (_, i) => run('cat', [path.join(m.mnt, `sleep-${i}`)]).then((r) => r.stdout)),
    )
    const elapsed = Date.now() - t0
    expect(outs).to.deep.equal(Array.from({length: n}, (_, i) => `data-${i}`))
    expect(elapsed, `8 reads of 300 ms each took ${elapsed} ms`).to.be.lessThan(1500)
  })

  it('drops a second reply to the same operation', async () => {
    expect(fs.statSync(path.join(m.mnt, 'twice')).isDirectory()).to.equal(true)
    for (let i = 0; i < 40; i++) fs.writeFileSync(path.join(m.backing, `sz-${i}`), Buffer.alloc(i))
    for (let i = 0; i < 40; i++) expect(fs.statSync(path.join(m.mnt, `sz-${i}`)).size).to.equal(i)
  })

  it('served all of the above without an uncaught exception', () => {
    expect(m.events.find((e) => e.ev === 'uncaught')?.message).to.equal(undefined)
    expect(m.exited()).to.equal(false)
  })
})

describe('fuse-native (patched) with maxWrite: requests of 1 MiB (FUSE_MAX_PAGES)', function () {
  let m: Mount

  before(async () => {
    m = await mountPassthrough({log: true, maxWrite: 1 << 20, options: ['default_permissions', 'allow_other', 'use_ino']})
    mounts.push(m.mnt)
  })

  after(async () => {
    await m?.stop()
  })

  it('asks for max_write=1048576', () => {
    const f = new Fuse('/nonexistent', {}, {maxWrite: 1 << 20})
    expect(f._fuseOptions()).to.equal('-obig_writes,max_write=1048576')
    // anything but a page multiple from 128 KiB to 1 MiB: libfuse's own 128 KiB
    for (const n of [4096, 2 << 20, (1 << 20) + 1, undefined]) expect(new Fuse('/nonexistent', {}, {maxWrite: n})._fuseOptions()).to.equal('-obig_writes,max_write=131072')
  })

  it('a 1 MiB write(2) reaches the handler as one write, and reads come back in pieces above 128 KiB, intact', async () => {
    const data = Buffer.alloc(4 << 20)
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i, i)
    const before = m.events.length
    const fd = fs.openSync(path.join(m.mnt, 'big'), 'w')
    for (let off = 0; off < data.length; off += 1 << 20) fs.writeSync(fd, data, off, 1 << 20, off)
    fs.closeSync(fd)
    const writes = () => m.events.slice(before).filter((e) => e.ev === 'write').map((e) => e.size as number)
    await m.waitFor(() => writes().reduce((a, b) => a + b, 0) >= data.length, 10_000, '4 MiB of writes')
    expect(writes()).to.deep.equal([1 << 20, 1 << 20, 1 << 20, 1 << 20])
    expect(fs.readFileSync(path.join(m.backing, 'big')).equals(data)).to.equal(true)

    expect(widenReadAhead(m.mnt, 1024), 'a readahead window of 1 MiB').to.equal(true) // (as a remote mount does)
    await run('sh', ['-c', 'echo 1 > /proc/sys/vm/drop_caches']) // the kernel reads the file from the mount again
    const at = m.events.length
    expect(fs.readFileSync(path.join(m.mnt, 'big')).equals(data)).to.equal(true)
    const reads = () => m.events.slice(at).filter((e) => e.ev === 'read').map((e) => e.size as number)
    await m.waitFor(() => reads().reduce((a, b) => a + b, 0) >= data.length, 10_000, '4 MiB of reads')
    expect(Math.max(...reads())).to.be.greaterThan(131072)
  })
})

describe('fuse-native (patched) with a configured timeout', function () {
  let m: Mount
  const TIMEOUT = 500

  before(async () => {
    m = await mountPassthrough({log: true, timeout: TIMEOUT, slowMs: 1500})
    mounts.push(m.mnt)
    for (let i = 0; i < 8; i++) fs.writeFileSync(path.join(m.backing, `ok-${i}`), Buffer.alloc(4096, 0x30 + i))
    fs.writeFileSync(path.join(m.backing, 'slow'), 'slow data')
    await run('mkfifo', [path.join(m.backing, 'late')])
  })

  after(async () => {
    await m?.stop()
  })

  const readsOk = async () => {
    for (let i = 0; i < 8; i++) {
      const data = await fs.promises.readFile(path.join(m.mnt, `ok-${i}`))
      expect(data.equals(Buffer.alloc(4096, 0x30 + i)), `ok-${i} intact`).to.equal(true)
    }
  }

  it('6. a slow read times out with ETIMEDOUT; its late reply is ignored and the server survives', async () => {
    const t0 = Date.now()
    const err = await readErr(path.join(m.mnt, 'slow'))
    expect(err?.code).to.equal('ETIMEDOUT')
    expect(Date.now() - t0).to.be.lessThan(1400)
    await sleep(1500) // the handler now replies (and reads into its buffer)
    expect(m.exited(), 'passthrough still running').to.equal(false)
    expect(m.events.find((e) => e.ev === 'uncaught')).to.equal(undefined)
    await readsOk()
  })

  it('6. a read still in the thread pool after the timeout writes into a private buffer', async () => {
    const err = await readErr(path.join(m.mnt, 'late'))
    expect(err?.code).to.equal('ETIMEDOUT')
    // Feed the FIFO: the pending fs.read in the passthrough now completes and
    // writes 4 KiB into the buffer it was given.
    const fd = fs.openSync(path.join(m.backing, 'late'), fs.constants.O_WRONLY | fs.constants.O_NONBLOCK)
    fs.writeSync(fd, Buffer.alloc(4096, 0x5a))
    fs.closeSync(fd)
    const late = await m.waitFor(() => m.events.find((e) => e.ev === 'late-read'), 5000, 'late read')
    expect(late.n).to.equal(4096)
    expect(late.sample, 'the late data landed in a live buffer').to.equal('5a5a5a5a')
    await sleep(100)
    expect(m.exited(), 'passthrough still running').to.equal(false)
    expect(m.events.find((e) => e.ev === 'uncaught')).to.equal(undefined)
    await readsOk()
  })
})
