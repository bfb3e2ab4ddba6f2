// The data channel (protocol 3) against a real server in this process: it
// carries reads, writes and calls only for a session it was attached to by
// the session's token and the member key's signature over its own nonce, for
// that session's volume; everything else is refused and the connection
// closed, while the server keeps serving others.
import {expect} from 'chai'
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import tls from 'node:tls'
import {generateIdentity, sign, type Identity} from '../../../src/crypto/sign.js'
import {dataTranscript, transcript} from '../../../src/remote/auth.js'
import type {Connection} from '../../../src/remote/connection.js'
import type {DataChannel} from '../../../src/remote/data-channel.js'
import {FrameAssembler} from '../../../src/remote/frame-assembler.js'
import {frame, MAX_FRAME, packFields, parseError, T, WRITE_HEADER, writeFrameHead, type Frame} from '../../../src/remote/frames.js'
import {makeTempDir, removeTree} from '../../helpers/tmp.js'
import {startHarness, tokenOf, type Harness} from './harness.js'

const caller = {uid: 0, gid: 0, pid: 1}

/** Writes `data` from offset 0 in writes of at most 1 MiB. */
async function writeAll(ch: DataChannel, fh: number, data: Buffer): Promise<void> {
  for (let at = 0; at < data.length; at += 1024 * 1024) {
    const n = Math.min(1024 * 1024, data.length - at)
    const buf = Buffer.alloc(WRITE_HEADER + n)
    data.copy(buf, WRITE_HEADER, at, at + n)
    await ch.write(buf, WRITE_HEADER, n, {fh, flags: 0, offset: at, ...caller})
  }
}

/** A read stream of `len` bytes from offset 0: the pieces as they were handed on. */
async function readPieces(ch: DataChannel, fh: number, len: number): Promise<Buffer[]> {
  const pieces: Buffer[] = []
  await new Promise<void>((resolve, reject) => {
    const s = ch.readStream(fh, 0, len)
    s.on('data', (r: {data?: Buffer}) => pieces.push(r.data!))
    s.on('end', resolve)
    s.on('error', reject)
  })
  return pieces
}

/** A raw TLS connection to the data port: frames in, frames out. */
class Raw {
  private readonly reader = new FrameAssembler(MAX_FRAME)
  private readonly frames: Frame[] = []
  private wake?: () => void
  closed = false

  private constructor(readonly socket: tls.TLSSocket) {
    socket.on('data', (b: Buffer) => {
      this.frames.push(...this.reader.push(b))
      this.wake?.()
    })
    socket.on('close', () => {
      this.closed = true
      this.wake?.()
    })
    socket.on('error', () => {})
  }

  static open(port: number): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({host: '127.0.0.1', port, rejectUnauthorized: false}, () => resolve(new Raw(s)))
      s.once('error', reject)
    })
  }

  /** The next frame, or undefined once the server closed the connection. */
  async next(timeoutMs = 5_000): Promise<Frame | undefined> {
    const deadline = Date.now() + timeoutMs
    while (this.frames.length === 0 && !this.closed && Date.now() < deadline) {
      await new Promise<void>(resolve => {
        this.wake = resolve
        setTimeout(resolve, 50)
      })
    }

    return this.frames.shift()
  }

  /** Waits until the server has closed the connection. */
  async gone(timeoutMs = 5_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs
    while (!this.closed && Date.now() < deadline) await new Promise(r => setTimeout(r, 20))
    return this.closed
  }

  send(b: Buffer): void {
    this.socket.write(b)
  }

  close(): void {
    this.socket.destroy()
  }
}

/** The server's fingerprint as a client pinned it. */
const fingerprintOf = (c: Connection) => (c as unknown as {fingerprint: Buffer}).fingerprint

/** Attaches a raw connection: the refusal's message, or 'OK'. */
async function attach(raw: Raw, o: {token: string; volume: string; signer: Identity; member: string; fp: Buffer; signVolume?: string; nonce?: Buffer}): Promise<string> {
  const hello = await raw.next()
  expect(hello?.type).to.equal(T.NONCE)
  const nonce = o.nonce ?? hello!.body
  const signature = sign(o.signer, dataTranscript(nonce, o.fp, o.signVolume ?? o.volume, o.member))
  raw.send(frame(T.AUTH, 1, packFields(Buffer.from(o.token), Buffer.from(o.volume), signature)))
  const answer = await raw.next()
  if (answer?.type === T.OK) return 'OK'
  if (answer?.type === T.ERROR) {
    expect(await raw.gone(), 'the server closes a refused data channel').to.equal(true)
    return parseError(answer.body).message
  }

  return `no answer (${answer?.type})`
}

/** A WRITE frame of `data` at offset to server handle fh. */
function writeFrame(id: number, fh: number, data: Buffer, offset = 0): Buffer {
  const buf = Buffer.alloc(WRITE_HEADER + data.length)
  data.copy(buf, WRITE_HEADER)
  return writeFrameHead(buf, id, data.length, {fh, flags: 0, offset, ...caller})
}

describe('paciofs serve: the data channel', function () {
  this.timeout(60_000)
  let dir: string
  let h: Harness

  beforeEach(async () => {
    dir = await makeTempDir('datach')
    h = await startHarness(dir, ['vol', 'other'])
  })

  afterEach(async () => {
    await h.close()
    await removeTree(dir)
  })

  it('a connection carries calls, writes and reads over it, as the session\'s member', async () => {
    const c = await h.connect(h.owner, 'vol')
    const ch = await c.data()
    expect(ch, 'the server offers a data channel and the client attaches to it').to.not.equal(undefined)
    const {fh} = await c.call('Create', {path: '/f', flags: 2, mode: 0o644, caller}) // a call over the channel
    const buf = Buffer.alloc(WRITE_HEADER + 5)
    buf.write('hello', WRITE_HEADER)
    await ch!.write(buf, WRITE_HEADER, 5, {fh: Number(fh), flags: 0, offset: 0, ...caller})
    const got: Buffer[] = []
    await new Promise<void>((resolve, reject) => {
      const s = ch!.readStream(Number(fh), 0, 100)
      s.on('data', (r: {data?: Buffer}) => got.push(r.data!))
      s.on('end', resolve)
      s.on('error', reject)
    })
    expect(Buffer.concat(got).toString()).to.equal('hello')
    await c.call('Release', {fh})
    expect(await readFile(join(dir, 'vol', 'f'), 'utf8')).to.equal('hello')
    expect(ch!.cipher, 'encrypted, AES-128-GCM preferred by both ends').to.deep.equal({version: 'TLSv1.3', name: 'TLS_AES_128_GCM_SHA256'})
  })

  it('streams a read of several frames intact, handed on in pieces as they arrive', async () => {
    const c = await h.connect(h.owner, 'vol')
    const ch = (await c.data())!
    const {fh} = await c.call('Create', {path: '/big', flags: 2, mode: 0o644, caller})
    const size = 3 * 1024 * 1024 + 12_345
    const data = Buffer.from(Array.from({length: size}, (_, i) => (i * 31 + (i >> 13)) % 256))
    await writeAll(ch, Number(fh), data)

    const pieces = await readPieces(ch, Number(fh), size + 100) // past the end: the server stops there
    expect(Buffer.concat(pieces).equals(data)).to.equal(true)
    expect(pieces.length, 'more pieces than frames (1 MiB each): handed on as they arrived').to.be.greaterThan(4)
    expect(pieces.every(p => p.length <= 1024 * 1024)).to.equal(true)

    // pieces given back at once: the next frames are received into the same buffer, and arrive intact
    const copies: Buffer[] = []
    const buffers = new Set<ArrayBufferLike>()
    let got = 0
    await new Promise<void>((resolve, reject) => {
      const s = ch.readStream(Number(fh), 0, size)
      s.on('data', (r: {data?: Buffer; release?: (b: Buffer) => void}) => {
        copies.push(Buffer.from(r.data!))
        if (got < 3 * 1024 * 1024) buffers.add(r.data!.buffer) // (the last frame, 12 KiB, is copied out whole)
        got += r.data!.length
        expect(r.release, 'a piece of a lent buffer').to.be.a('function')
        r.release!(r.data!)
      })
      s.on('end', resolve)
      s.on('error', reject)
    })
    expect(Buffer.concat(copies).equals(data)).to.equal(true)
    expect(buffers.size, 'one buffer for the three 1 MiB frames').to.equal(1)
    expect(pieces.every(p => p.buffer !== [...buffers][0]), 'pieces kept are never received into again').to.equal(true)
    await c.call('Release', {fh})
  })

  it('with PACIOFS_DIRECT_RECEIVE=0 the client reads with data events, and gets the same bytes', async () => {
    const before = process.env.PACIOFS_DIRECT_RECEIVE
    process.env.PACIOFS_DIRECT_RECEIVE = '0'
    try {
      const c = await h.connect(h.owner, 'vol')
      const ch = (await c.data())!
      const {fh} = await c.call('Create', {path: '/evented', flags: 2, mode: 0o644, caller})
      const size = 2 * 1024 * 1024 + 77
      const data = Buffer.from(Array.from({length: size}, (_, i) => (i * 13 + (i >> 11)) % 256))
      await writeAll(ch, Number(fh), data)

      const pieces = await readPieces(ch, Number(fh), size)
      expect(Buffer.concat(pieces).equals(data)).to.equal(true)
      await c.call('Release', {fh})
    } finally {
      if (before === undefined) delete process.env.PACIOFS_DIRECT_RECEIVE
      else process.env.PACIOFS_DIRECT_RECEIVE = before
    }
  })

  it('refuses a connection that does not authenticate, or sends anything before it does', async () => {
    const port = h.server.dataPort
    expect(port).to.be.greaterThan(0)
    const c = await h.connect(h.owner, 'vol')
    const {fh} = await c.call('Create', {path: '/f', flags: 2, mode: 0o644, caller})

    // a write straight away
    let raw = await Raw.open(port)
    expect((await raw.next())?.type).to.equal(T.NONCE)
    // (a client with Node's own preference, AES-256 first, gets the server's: AES-128-GCM)
    expect(raw.socket.getCipher().name).to.equal('TLS_AES_128_GCM_SHA256')
    raw.send(writeFrame(1, Number(fh), Buffer.from('planted')))
    const refusal = await raw.next()
    expect(refusal?.type).to.equal(T.ERROR)
    expect(parseError(refusal!.body).message).to.match(/must authenticate/)
    expect(await raw.gone()).to.equal(true)

    // a frame longer than an authentication may be
    raw = await Raw.open(port)
    await raw.next()
    const big = Buffer.alloc(64 * 1024)
    big.writeUInt32BE(big.length - 4)
    raw.send(big)
    expect((await raw.next())?.type).to.equal(T.ERROR)
    expect(await raw.gone()).to.equal(true)

    // an unknown token
    raw = await Raw.open(port)
    expect(await attach(raw, {token: 'x'.repeat(43), volume: 'vol', signer: h.owner, member: h.owner.pid, fp: fingerprintOf(c)})).to.match(/unknown or ended session/)
    expect(await readFile(join(dir, 'vol', 'f'), 'utf8')).to.equal('') // nothing was written
    expect((await c.call('Getattr', {path: '/f'})).stat.size).to.equal('0') // and the server serves the member
  })

  it('refuses a stolen token without the member key, a signature for another volume or another connection, and a wrong volume', async () => {
    const port = h.server.dataPort
    const c = await h.connect(h.owner, 'vol')
    const token = tokenOf(c)
    const fp = fingerprintOf(c)
    const thief = generateIdentity()

    // a stolen token, signed with the thief's key (naming the owner, or itself)
    expect(await attach(await Raw.open(port), {token, volume: 'vol', signer: thief, member: h.owner.pid, fp})).to.match(/does not verify/)
    expect(await attach(await Raw.open(port), {token, volume: 'vol', signer: thief, member: thief.pid, fp})).to.match(/does not verify/)
    // the owner's signature, but made over the gRPC session's transcript (another label) or for another volume
    let raw = await Raw.open(port)
    const nonce = (await raw.next())!.body
    raw.send(frame(T.AUTH, 1, packFields(Buffer.from(token), Buffer.from('vol'), sign(h.owner, transcript(nonce, fp, 'vol', h.owner.pid)))))
    expect((await raw.next())?.type).to.equal(T.ERROR)
    expect(await attach(await Raw.open(port), {token, volume: 'vol', signer: h.owner, member: h.owner.pid, fp, signVolume: 'other'})).to.match(/does not verify/)
    // a session of volume vol used for volume other (the owner is a member of both)
    expect(await attach(await Raw.open(port), {token, volume: 'other', signer: h.owner, member: h.owner.pid, fp})).to.match(/is for volume vol, not "other"/)
    // a signature over another connection's nonce (replayed)
    const first = await Raw.open(port)
    const firstNonce = (await first.next())!.body
    first.close()
    raw = await Raw.open(port)
    const reply = await attach(raw, {token, volume: 'vol', signer: h.owner, member: h.owner.pid, fp, nonce: firstNonce})
    expect(reply).to.match(/does not verify/)
    // signed towards another server (its certificate's fingerprint)
    expect(await attach(await Raw.open(port), {token, volume: 'vol', signer: h.owner, member: h.owner.pid, fp: Buffer.alloc(32, 7)})).to.match(/does not verify/)
    // and the real thing works
    expect(await attach(await Raw.open(port), {token, volume: 'vol', signer: h.owner, member: h.owner.pid, fp})).to.equal('OK')
  })

  it('serves only the session\'s own handles; a removed member\'s data channel is closed; an ended session\'s token opens none', async () => {
    const port = h.server.dataPort
    const bob = generateIdentity()
    const owner = await h.connect(h.owner, 'vol')
    await owner.call('MemberAdd', {member: bob.pid, caller})
    const {fh: ownersFh} = await owner.call('Create', {path: '/owners', flags: 2, mode: 0o644, caller})
    const b = await h.connect(bob, 'vol')
    const bobsToken = tokenOf(b)
    const raw = await Raw.open(port)
    expect(await attach(raw, {token: bobsToken, volume: 'vol', signer: bob, member: bob.pid, fp: fingerprintOf(b)})).to.equal('OK')
    // the owner's handle number is not bob's
    raw.send(writeFrame(7, Number(ownersFh), Buffer.from('bob was here')))
    const answer = await raw.next()
    expect(answer?.type).to.equal(T.ERROR)
    expect(parseError(answer!.body).errno).to.equal('EBADF')
    expect(await readFile(join(dir, 'vol', 'owners'), 'utf8')).to.equal('')

    // bob removed: his session ends, and with it his data channel
    await owner.call('MemberRemove', {member: bob.pid, caller})
    expect(await raw.gone(), 'the data channel of a removed member is closed').to.equal(true)
    const again = await Raw.open(port)
    expect(await attach(again, {token: bobsToken, volume: 'vol', signer: bob, member: bob.pid, fp: fingerprintOf(b)})).to.match(/unknown or ended session/)
    expect((await owner.call('Getattr', {path: '/owners'})).stat.size).to.equal('0')
  })
})
