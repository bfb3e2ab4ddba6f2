import {expect} from 'chai'
import {JOIN_BYTES, SendQueue} from '../../../src/remote/send-queue.js'

/** A socket whose writes the test completes by hand. */
function fakeSocket() {
  const writes: Buffer[] = []
  const callbacks: Array<() => void> = []
  let ended = false
  return {
    writes, get ended() { return ended },
    write(buf: Buffer, cb: () => void) {
      writes.push(buf)
      callbacks.push(cb)
    },
    end() { ended = true },
    /** completes the oldest write under way */
    complete() { callbacks.shift()!() },
    get inFlight() { return callbacks.length },
  }
}

const frame = (n: number, fill: number) => Buffer.alloc(n, fill)

describe('server: send queue (one write at a time on the data channel)', () => {
  it('writes one buffer at a time, as it was given (a large frame is not copied), the next only once the one before is done', () => {
    const s = fakeSocket()
    const q = new SendQueue(s)
    const big = [frame(1 << 20, 1), frame(1 << 20, 2), frame(1 << 20, 3)]
    const done: number[] = []
    big.forEach((b, i) => q.send(b, () => done.push(i)))
    expect(s.writes).to.have.length(1)
    expect(s.writes[0]).to.equal(big[0]) // the same buffer: no copy
    expect(q.bytes).to.equal(3 << 20)
    s.complete()
    expect(done).to.deep.equal([0])
    expect(s.inFlight).to.equal(1)
    s.complete()
    s.complete()
    expect(s.writes).to.deep.equal(big)
    expect(done).to.deep.equal([0, 1, 2])
    expect(q.bytes).to.equal(0)
  })

  it('joins small frames waiting together into one write, up to JOIN_BYTES, keeping their order', () => {
    const s = fakeSocket()
    const q = new SendQueue(s)
    q.send(frame(1 << 20, 9)) // under way
    const small = Array.from({length: 10}, (_, i) => frame(20_000, i))
    const done: number[] = []
    small.forEach((b, i) => q.send(b, () => done.push(i)))
    s.complete()
    expect(s.writes[1]).to.deep.equal(Buffer.concat(small.slice(0, 3))) // 60,000 bytes; a fourth would pass JOIN_BYTES
    expect(s.writes[1].length).to.be.at.most(JOIN_BYTES)
    while (s.inFlight > 0) s.complete()
    expect(Buffer.concat(s.writes.slice(1))).to.deep.equal(Buffer.concat(small))
    expect(done).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  })

  it('tells when a write is done (a reader waiting for room checks bytes); end() waits for what is queued; close() drops it', () => {
    const s = fakeSocket()
    let written = 0
    const q = new SendQueue(s, () => written++)
    q.send(frame(100, 1))
    q.send(frame(200, 2))
    q.end(frame(10, 3))
    q.send(frame(5, 4)) // after end: dropped
    expect(s.ended).to.equal(false)
    s.complete()
    expect(written).to.equal(1)
    expect(q.bytes).to.equal(200)
    s.complete()
    expect(s.writes.map(b => b[0])).to.deep.equal([1, 2, 3])
    expect(s.ended).to.equal(true)

    const t = fakeSocket()
    const r = new SendQueue(t)
    const done: number[] = []
    r.send(frame(100, 1), () => done.push(1))
    r.send(frame(100_000, 2), () => done.push(2))
    r.close()
    expect(done, 'the queued frame\'s buffer is given back at once').to.deep.equal([2])
    t.complete()
    expect(done).to.deep.equal([2, 1])
    expect(t.writes).to.have.length(1)
  })
})
