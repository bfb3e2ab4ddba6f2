// Bad input and hostile clients against a real server (in this process, on
// loopback, with TLS): each gets a clear refusal, nothing outside the volume
// is touched, the server keeps serving the others, nothing acknowledged is lost.
import {expect} from 'chai'
import {spawn} from 'node:child_process'
import {createHash} from 'node:crypto'
import {mkdir, readFile, stat, symlink, truncate, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import * as grpc from '@grpc/grpc-js'
import {generateIdentity, sign} from '../../../src/crypto/sign.js'
import {readLog} from '../../../src/app/log.js'
import {transcript} from '../../../src/remote/auth.js'
import {MAX_CHUNK, PROTOCOL_VERSION, SERVICE} from '../../../src/remote/wire.js'
import {childEnv} from '../../helpers/exec.js'
import {REPO} from '../../helpers/paciofs.js'
import {makeTempDir, removeTree} from '../../helpers/tmp.js'
import {newIdentity, rawCall, startHarness, tokenOf, type Harness} from './harness.js'

const caller = {uid: 0, gid: 0, pid: 1}

/** The errno (file-system error) or gRPC status name a call failed with. */
async function failure(p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (error) {
    const e = error as {code?: unknown; details?: string}
    if (typeof e.code === 'string') return e.code
    if (typeof e.code === 'number') return grpc.status[e.code]
    throw error
  }

  return 'no error'
}

describe('paciofs serve: hostile clients', function () {
  this.timeout(60_000)
  let dir: string
  let h: Harness

  beforeEach(async () => {
    dir = await makeTempDir('hostile')
    h = await startHarness(dir, ['vol', 'other'], {maxHandles: 16})
  })

  const umask = process.umask()
  afterEach(async () => {
    await h.close()
    await removeTree(dir)
    expect(process.umask(), 'the process umask is given back').to.equal(umask)
  })

  it('refuses an unknown key, and a handshake whose signature does not verify', async () => {
    const stranger = generateIdentity()
    expect(await failure(h.connect(stranger, 'vol'))).to.equal('EPERM')
    // a member's key claimed by someone who cannot sign with it
    const owner = await h.connect(h.owner, 'vol')
    const hello = await rawCall(owner, 'Hello', {protocol: 1})
    const forged = (owner as any).client.makeServerStreamRequest(`/${SERVICE}/Session`, (v: any) => (owner as any).client.constructor.service.Session.requestSerialize(v),
      (b: Buffer) => (owner as any).client.constructor.service.Session.responseDeserialize(b),
      {volume: 'vol', member: h.owner.pid, nonce: hello.nonce, signature: sign(stranger, transcript(hello.nonce, Buffer.alloc(32), 'vol', h.owner.pid))}, new grpc.Metadata(), {})
    const status = await new Promise<number>(resolve => forged.on('error', (e: grpc.ServiceError) => resolve(e.code)).on('data', () => resolve(-1)))
    expect(grpc.status[status]).to.equal('UNAUTHENTICATED')
    // and the server still serves its members
    expect((await owner.call('Readdir', {path: '/'})).names).to.deep.equal([])
  })

  it('refuses a replayed nonce and a token used on another connection', async () => {
    const a = await h.connect(h.owner, 'vol')
    const b = await h.connect(h.owner, 'vol')
    const stolen = tokenOf(a)
    expect(await failure(rawCall(b, 'Getattr', {path: '/'}, stolen))).to.equal('UNAUTHENTICATED')
    expect(await failure(rawCall(b, 'Getattr', {path: '/'}))).to.equal('UNAUTHENTICATED')
    expect(await failure(rawCall(b, 'Getattr', {path: '/'}, 'x'.repeat(43)))).to.equal('UNAUTHENTICATED')
    expect((await rawCall(a, 'Getattr', {path: '/'}, stolen)).stat.mode).to.be.a('number')

    const hello = await rawCall(a, 'Hello', {protocol: 1})
    const fp = (a as any).fingerprint as Buffer
    const open = () => new Promise<string>(resolve => {
      const s = (a as any).client.makeServerStreamRequest(`/${SERVICE}/Session`, (v: any) => (a as any).client.constructor.service.Session.requestSerialize(v),
        (buf: Buffer) => (a as any).client.constructor.service.Session.responseDeserialize(buf),
        {volume: 'vol', member: h.owner.pid, nonce: hello.nonce, signature: sign(h.owner, transcript(hello.nonce, fp, 'vol', h.owner.pid))}, new grpc.Metadata(), {})
      s.on('data', () => {
        resolve('OK')
        s.cancel()
      })
      s.on('error', (e: grpc.ServiceError) => resolve(grpc.status[e.code]))
    })
    expect(await open()).to.equal('OK')
    expect(await open()).to.equal('UNAUTHENTICATED') // the same signed nonce again
  })

  it('refuses a member removed while connected at its next call', async () => {
    const bob = generateIdentity()
    const owner = await h.connect(h.owner, 'vol')
    await owner.call('MemberAdd', {member: bob.pid, caller})
    const b = await h.connect(bob, 'vol')
    await b.call('Mkdir', {path: '/bobs', mode: 0o755, caller})
    const {fh} = await b.call('Create', {path: '/bobs/f', flags: 1, mode: 0o644, caller})
    await b.call('Write', {fh, data: Buffer.from('acknowledged'), offset: 0, caller})
    await owner.call('MemberRemove', {member: bob.pid, caller})
    expect(await failure(b.call('Readdir', {path: '/'}))).to.equal('EACCES')
    expect(await failure(b.call('Write', {fh, data: Buffer.from('more'), offset: 12, caller}))).to.equal('EACCES')
    // what bob wrote before is kept and recorded (his open file was released when his session ended)
    expect(await readFile(join(dir, 'vol', 'bobs', 'f'), 'utf8')).to.equal('acknowledged')
    await h.volumes.get('vol')!.stack.volume.sync()
    const records = []
    for await (const e of readLog({volume: join(dir, 'vol')})) records.push(e.record)
    const write = records.find(r => r?.op === 'write' && r.path === '/bobs/f')
    expect(write?.who.member).to.equal(bob.pid)
    expect(write?.digest).to.equal(createHash('sha256').update('acknowledged').digest('hex'))
    expect(records.filter(r => r?.op === 'member-remove').map(r => [r!.member, r!.who.member])).to.deep.equal([[bob.pid, h.owner.pid]])
    // the last member cannot remove itself
    expect(await failure(owner.call('MemberRemove', {member: h.owner.pid, caller}))).to.equal('EINVAL')
  })

  it('refuses a member of one volume on another', async () => {
    const carol = generateIdentity()
    const owner = await h.connect(h.owner, 'vol')
    await owner.call('MemberAdd', {member: carol.pid, caller})
    await h.connect(carol, 'vol')
    const refused = await h.connect(carol, 'other').then(() => 'connected', (e: Error) => e.message)
    expect(refused).to.match(/not a member of volume other/)
    expect(await failure(h.connect(carol, 'no-such-volume'))).to.equal('EINPUT')
  })

  it('keeps every path inside the volume: .., absolute and relative paths, NUL, symlinks pointing outside', async () => {
    const outside = join(dir, 'outside')
    await mkdir(outside)
    await writeFile(join(outside, 'secret'), 'secret')
    const before = await stat(join(outside, 'secret'))
    await symlink(outside, join(dir, 'vol', 'escape')) // as if made by another client: the server must never follow it
    const c = await h.connect(h.owner, 'vol')
    for (const bad of ['../outside/secret', '/../outside/secret', '/a/../../outside/secret', 'relative', '', '/x\0y', '/./x', '/.paciofs/volume.json']) {
      const code = await failure(c.call('Getattr', {path: bad}))
      expect(code, JSON.stringify(bad)).to.be.oneOf(['EINVAL', 'ENOENT'])
      expect(await failure(c.call('Create', {path: bad, flags: 1, mode: 0o644, caller})), JSON.stringify(bad)).to.be.oneOf(['EINVAL', 'EACCES', 'ENOENT'])
    }

    expect(await failure(c.call('Getattr', {path: '/escape/secret'}))).to.equal('ELOOP')
    expect(await failure(c.call('Open', {path: '/escape/secret', flags: 0, caller}))).to.equal('ELOOP')
    expect(await failure(c.call('Readdir', {path: '/escape'}))).to.equal('ELOOP')
    expect(await failure(c.call('Chmod', {path: '/escape', mode: 0o777, caller}))).to.equal('ELOOP')
    expect(await failure(c.call('Create', {path: '/escape/planted', flags: 1, mode: 0o644, caller}))).to.equal('ELOOP')
    expect(await failure(c.call('Truncate', {path: '/escape/secret', size: 0, caller}))).to.equal('ELOOP')
    expect(await failure(c.call('Rename', {from: '/escape/secret', to: '/stolen', caller}))).to.equal('ELOOP')
    expect(await failure(c.call('Link', {from: '/escape/secret', to: '/stolen', caller}))).to.equal('ELOOP')
    expect(await failure(c.call('Setxattr', {path: '/escape/secret', name: 'user.x', value: Buffer.from('1'), flags: 0, caller}))).to.equal('ELOOP')
    expect(await failure(c.call('Mknod', {path: '/dev-sda', mode: 0o60644, rdev: 0x800, caller}))).to.equal('EPERM')
    // a symlink is only a name: making one that points outside is fine, and it is never followed here
    await c.call('Symlink', {from: '/etc', to: '/etc-link', caller})
    expect((await c.call('Readlink', {path: '/etc-link'})).text).to.equal('/etc')
    expect(await failure(c.call('Readdir', {path: '/etc-link'}))).to.equal('ELOOP')
    expect(await failure(c.call('Getattr', {path: '/etc-link/passwd'}))).to.equal('ELOOP')

    const after = await stat(join(outside, 'secret'))
    expect(after.mode).to.equal(before.mode)
    expect(after.mtimeMs).to.equal(before.mtimeMs)
    expect(await readFile(join(outside, 'secret'), 'utf8')).to.equal('secret')
  })

  it('refuses oversized and malformed messages and keeps serving', async () => {
    const c = await h.connect(h.owner, 'vol')
    const {fh} = await c.call('Create', {path: '/f', flags: 2, mode: 0o644, caller})
    expect(await failure(c.call('Write', {fh, data: Buffer.alloc(MAX_CHUNK + 128 * 1024), offset: 0, caller}))).to.equal('EIO') // RESOURCE_EXHAUSTED
    expect((await c.call('Write', {fh, data: Buffer.alloc(MAX_CHUNK, 1), offset: 0, caller})).count).to.equal(MAX_CHUNK)
    expect((await c.call('Read', {fh, length: 64 * 1024 * 1024, offset: 0})).data.length).to.equal(MAX_CHUNK) // capped
    expect(await failure(c.call('Read', {fh: '999999', length: 10, offset: 0}))).to.equal('EBADF')
    expect(await failure(c.call('Write', {fh, data: Buffer.from('x'), offset: '18446744073709551615', caller}))).to.equal('EINVAL')
    expect(await failure(c.call('Utimens', {path: '/f', atime: 'yesterday', mtime: 'now', caller}))).to.equal('EINVAL')
    expect(await failure(c.call('Mkdir', {path: '/nocaller', mode: 0o755}))).to.equal('EINVAL')
    // bytes that are no protobuf message at all
    const garbage = await new Promise<string>(resolve => {
      (c as any).client.makeUnaryRequest(`/${SERVICE}/Getattr`, (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x12]), new grpc.Metadata(), {deadline: Date.now() + 5000},
        (e: grpc.ServiceError | null) => resolve(e ? grpc.status[e.code] : 'OK'))
    })
    expect(garbage).to.be.oneOf(['INTERNAL', 'UNAUTHENTICATED', 'INVALID_ARGUMENT'])
    // a version older than any the server speaks is refused by Hello; a newer one is answered with
    // the newest both speak (the client decides), and a protocol-1 client is still answered as one
    expect(await failure(rawCall(c, 'Hello', {protocol: 0}))).to.equal('FAILED_PRECONDITION')
    expect((await rawCall(c, 'Hello', {protocol: 99})).protocol).to.equal(PROTOCOL_VERSION)
    expect((await rawCall(c, 'Hello', {protocol: 1})).protocol).to.equal(1)
    await c.call('Release', {fh})
    expect((await c.call('Getattr', {path: '/f'})).stat.size).to.equal(String(MAX_CHUNK))
  })

  it('a Release of several handles: too many is refused; an unknown or repeated handle fails it, the others are released all the same', async () => {
    const c = await h.connect(h.owner, 'vol')
    expect(c.releaseBatch, 'told at the session\'s start').to.equal(64)
    const fhs: string[] = []
    for (let i = 0; i < 4; i++) fhs.push((await c.call('Create', {path: `/r${i}`, flags: 1, mode: 0o644, caller})).fh)
    const session = h.server.service.sessions.all().find(s => s.handles.size === 4)!
    expect(await failure(c.call('Release', {fh: fhs[0], more: Array.from({length: 64}, () => fhs[1])}))).to.equal('EINVAL')
    expect(session.handles.size, 'nothing released by a refused call').to.equal(4)
    expect(await failure(c.call('Release', {fh: fhs[0], more: [fhs[1], '999', fhs[1]]}))).to.equal('EBADF')
    expect([...session.handles.keys()].map(String).sort()).to.deep.equal([fhs[2], fhs[3]].sort())
    await c.call('Release', {fh: fhs[2], more: [fhs[3]]})
    expect(session.handles.size).to.equal(0)
    // each file's release recorded its content (the digest of an empty file)
    const served = h.volumes.get('vol')!
    await served.stack.recorder.committed()
    const writes: string[] = []
    for await (const e of readLog({volume: join(dir, 'vol')})) if (e.record.op === 'write') writes.push(e.record.path)
    expect(writes.sort()).to.deep.equal(['/r0', '/r1', '/r2', '/r3'])
  })

  it('a flood of opens hits the per-session limit (EMFILE); others are served meanwhile', async () => {
    const owner = await h.connect(h.owner, 'vol')
    const {fh} = await owner.call('Create', {path: '/f', flags: 1, mode: 0o644, caller})
    await owner.call('Release', {fh})
    const flood = await h.connect(h.owner, 'vol')
    const results = await Promise.allSettled(Array.from({length: 200}, () => flood.call('Open', {path: '/f', flags: 0, caller})))
    const opened = results.filter(r => r.status === 'fulfilled').length
    const emfile = results.filter(r => r.status === 'rejected' && (r.reason as NodeJS.ErrnoException).code === 'EMFILE').length
    expect(opened).to.equal(16)
    expect(emfile).to.equal(184)
    // another session is not affected
    const other = await h.connect(h.owner, 'vol')
    const o = await other.call('Open', {path: '/f', flags: 0, caller})
    await other.call('Release', {fh: o.fh})
    // and the flooder gets its descriptors back when its session ends
    flood.close()
    const served = h.volumes.get('vol')!
    const deadline = Date.now() + 10_000
    while (h.server.service.sessions.all().some(s => s.served === served && s.handles.size > 0) && Date.now() < deadline) await new Promise(r => setTimeout(r, 50))
    expect(h.server.service.sessions.all().filter(s => s.handles.size > 0)).to.have.length(0)
  })

  it('a client killed mid-write loses nothing it was told was written; its file is released and recorded', async () => {
    const keys = join(dir, 'keys')
    const writer = await newIdentity(keys, 'writer')
    const owner = await h.connect(h.owner, 'vol')
    await owner.call('MemberAdd', {member: writer.identity.pid, caller})
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'test/integration/remote/fixtures/writer.ts'), h.address, writer.file, join(dir, 'known-servers.json')],
      {env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO})
    let out = ''
    let err = ''
    child.stdout!.on('data', d => (out += d))
    child.stderr!.on('data', d => (err += d))
    const deadline = Date.now() + 30_000
    while (out.split('\n').length < 40 && child.exitCode === null && Date.now() < deadline) await new Promise(r => setTimeout(r, 20))
    child.kill('SIGKILL')
    await new Promise(r => child.on('exit', r))
    const acked = Math.max(...out.trim().split('\n').map(Number))
    expect(acked, err).to.be.at.least(64 * 1024 * 30)
    // the server notices (connection closed), releases the handle and records the content
    const served = h.volumes.get('vol')!
    const until = Date.now() + 15_000
    while (h.server.service.sessions.all().some(s => s.member === writer.identity.pid) && Date.now() < until) await new Promise(r => setTimeout(r, 50))
    expect(h.server.service.sessions.all().filter(s => s.member === writer.identity.pid)).to.have.length(0)
    await served.stack.volume.sync()
    const data = await readFile(join(dir, 'vol', 'victim'))
    expect(data.length).to.be.at.least(acked)
    for (let off = 0; off < acked; off += 64 * 1024) expect(data[off], `chunk at ${off}`).to.equal((off / (64 * 1024)) % 251)
    const records = []
    for await (const e of readLog({volume: join(dir, 'vol')})) records.push(e.record)
    const write = records.filter(r => r?.op === 'write' && r.path === '/victim').at(-1)
    expect(write?.size).to.equal(data.length)
    expect(write?.digest).to.equal(createHash('sha256').update(data).digest('hex'))
    expect(write?.who.member).to.equal(writer.identity.pid)
  })

  it('a client that stops reading its ReadStreams holds a bounded part of the server\'s memory; others are served meanwhile', async () => {
    const c = await h.connect(h.owner, 'vol')
    // sparse and long: a stream a client stopped reading must stall long before its end
    await writeFile(join(dir, 'vol', 'big'), Buffer.alloc(MAX_CHUNK, 7))
    await truncate(join(dir, 'vol', 'big'), 64 * MAX_CHUNK)
    const {fh} = await c.call('Open', {path: '/big', flags: 0, caller})
    // count what the server reads from the volume for streams
    const served = h.volumes.get('vol')!
    const read = served.volume.read.bind(served.volume)
    let bytes = 0
    served.volume.read = async (...args) => {
      const n = await read(...args)
      bytes += n
      return n
    }

    // 8 streams of 64 MiB each (512 MiB asked for), none of them read: each paused at once
    const streams = await Promise.all(Array.from({length: 8}, async () => {
      const st = await c.openStream('ReadStream', {fh, offset: 0, length: 64 * MAX_CHUNK})
      st.pause()
      st.on('error', () => {}) // cancelled below
      return st
    }))
    // the server goes as far as flow control lets it, then waits
    let last = -1
    for (let i = 0; i < 100 && bytes !== last; i++) {
      last = bytes
      await new Promise(r => setTimeout(r, 300))
    }

    // bound: per stream what the client's paused stream buffers (grpc-js: 16 messages), the
    // messages the server may queue (4) and the one being read, plus what the HTTP/2 windows
    // (8 MiB per connection) let through; far less than was asked for
    expect(bytes).to.be.below(8 * (16 + 5) * MAX_CHUNK + 8 * MAX_CHUNK)
    expect(bytes).to.be.below(8 * 64 * MAX_CHUNK / 2)
    // another client is served meanwhile, and the stalled streams end when cancelled
    const other = await h.connect(h.owner, 'vol')
    expect((await other.call('Getattr', {path: '/big'})).stat.size).to.equal(String(64 * MAX_CHUNK))
    for (const st of streams) st.cancel()
    await c.call('Release', {fh})
  })

  it('WriteStream: writes land in order, each answered; a bad handle is answered EBADF and ends the stream', async () => {
    const c = await h.connect(h.owner, 'vol')
    expect(c.protocol).to.equal(PROTOCOL_VERSION)
    const {fh} = await c.call('Create', {path: '/s', flags: 1, mode: 0o644, caller})
    const opened = await c.openDuplex('WriteStream')
    const st = opened!.stream
    const replies: Array<Record<string, any>> = []
    st.on('data', r => replies.push(r))
    const ended = new Promise(resolve => st.on('status', resolve))
    for (let i = 0; i < 6; i++) st.write({fh, offset: i * 1000, data: Buffer.alloc(1000, 65 + i), caller})
    st.write({fh: '999999', offset: 0, data: Buffer.from('x'), caller})
    st.write({fh, offset: 6000, data: Buffer.from('never'), caller}) // after the failure: not written
    await ended
    expect(replies.slice(0, 6).map(r => Number(r.count))).to.deep.equal([1000, 1000, 1000, 1000, 1000, 1000])
    expect(replies[6]?.error?.errno).to.equal('EBADF')
    expect(replies).to.have.length(7)
    await c.call('Release', {fh})
    const data = await readFile(join(dir, 'vol', 's'))
    expect(data.length).to.equal(6000)
    for (let i = 0; i < 6; i++) expect(data[i * 1000]).to.equal(65 + i)
  })
})
