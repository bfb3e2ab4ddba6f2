import {expect} from 'chai'
import {EventEmitter} from 'node:events'
import {WriteStream} from '../../../src/remote/write-stream.js'

/** A fake client duplex stream: records what is written; the test answers. */
class FakeDuplex extends EventEmitter {
  readonly sent: Buffer[] = []
  ended = false
  cancelled = false
  write(msg: Buffer): boolean {
    this.sent.push(msg)
    return true
  }

  end(): void {
    this.ended = true
  }

  cancel(): void {
    this.cancelled = true
    this.emit('error', Object.assign(new Error('cancelled'), {code: 1, details: 'cancelled'}))
  }
}

const settle = (p: Promise<unknown>) => p.then(() => 'ok', (e: NodeJS.ErrnoException) => e.code ?? e.message)

describe('remote: WriteStream (client end of the streamed writes)', () => {
  it('settles writes in the order sent by the replies to them', async () => {
    const d = new FakeDuplex()
    const ws = new WriteStream(d, e => e, 1)
    const a = ws.send(Buffer.from('a'), 10)
    const b = ws.send(Buffer.from('b'), 20)
    expect(d.sent.map(m => m.toString())).to.deep.equal(['a', 'b'])
    expect(ws.pending).to.equal(2)
    d.emit('data', {count: '10'})
    expect(await settle(a)).to.equal('ok')
    expect(ws.pending).to.equal(1)
    d.emit('data', {count: 20})
    expect(await settle(b)).to.equal('ok')
    ws.end()
    expect(d.ended).to.equal(true)
    expect(ws.usable).to.equal(false)
    expect(await settle(ws.send(Buffer.from('c'), 1))).to.equal('EIO')
  })

  it('an error reply fails that write and every later one; the stream is not used again', async () => {
    const d = new FakeDuplex()
    const ws = new WriteStream(d, e => e, 1)
    const a = ws.send(Buffer.from('a'), 10)
    const b = ws.send(Buffer.from('b'), 10)
    d.emit('data', {error: {errno: 'ENOSPC', message: 'disk full'}})
    expect(await settle(a)).to.equal('ENOSPC')
    expect(await settle(b)).to.equal('ENOSPC')
    expect(ws.usable).to.equal(false)
  })

  it('a short count, an early end or a gRPC failure fail the waiting writes', async () => {
    const short = new FakeDuplex()
    const s1 = new WriteStream(short, e => e, 1)
    const w1 = s1.send(Buffer.from('a'), 10)
    short.emit('data', {count: 5})
    expect(await settle(w1)).to.equal('EIO')

    const early = new FakeDuplex()
    const s2 = new WriteStream(early, e => e, 1)
    const w2 = s2.send(Buffer.from('a'), 10)
    early.emit('end')
    expect(await settle(w2)).to.equal('EIO')

    const broken = new FakeDuplex()
    const s3 = new WriteStream(broken, () => Object.assign(new Error('gone'), {code: 'ENOTCONN'}), 1)
    const w3 = s3.send(Buffer.from('a'), 10)
    broken.emit('error', new Error('UNAVAILABLE'))
    expect(await settle(w3)).to.equal('ENOTCONN')
  })

  it('a server that stays silent while writes wait fails them (EIO) and cancels the stream', async () => {
    const d = new FakeDuplex()
    const ws = new WriteStream(d, e => e, 1, 50)
    const t0 = Date.now()
    expect(await settle(ws.send(Buffer.from('a'), 10))).to.equal('EIO')
    expect(Date.now() - t0).to.be.below(2000)
    expect(d.cancelled).to.equal(true)
  })
})
