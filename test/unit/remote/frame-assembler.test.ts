import {expect} from 'chai'
import {FrameAssembler, SMALL} from '../../../src/remote/frame-assembler.js'
import {frame, FRAME_HEADER, MAX_FRAME, T, type Frame} from '../../../src/remote/frames.js'

const body = (n: number, seed: number) => {
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed) % 256
  return b
}

/** Feeds bytes the way Node's user-buffer mode does: at most `sizes[i]` bytes at a time, copied into room(). */
function feed(a: FrameAssembler, bytes: Buffer, sizes: number[]): Frame[] {
  const out: Frame[] = []
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const room = a.room()
    expect(room.length, 'room() is never empty').to.be.greaterThan(0)
    const k = bytes.copy(room, 0, at, Math.min(bytes.length, at + sizes[i % sizes.length], at + room.length))
    at += k
    out.push(...a.filled(k))
  }

  return out
}

/** Streamed pieces put together again; checks each piece but a frame's last has `more`, and that no frame lies inside a streamed one. */
function whole(got: Frame[], streamed: (t: number) => boolean): Array<{type: number; id: number; body: Buffer}> {
  const out: Array<{type: number; id: number; body: Buffer}> = []
  let open: {type: number; id: number; parts: Buffer[]} | undefined
  for (const f of got) {
    if (!streamed(f.type)) {
      expect(open, 'a frame inside a streamed one').to.equal(undefined)
      expect(f.more).to.equal(undefined)
      out.push(f)
      continue
    }

    if (open) expect(f.id).to.equal(open.id)
    open ??= {type: f.type, id: f.id, parts: []}
    open.parts.push(Buffer.from(f.body)) // copied now; checked again below that the views stayed intact
    if (f.more) {
      expect(f.body.length).to.be.greaterThan(0)
      continue
    }

    out.push({type: open.type, id: open.id, body: Buffer.concat(open.parts)})
    open = undefined
  }

  expect(open).to.equal(undefined)
  return out
}

describe('remote: frame assembler (received bytes written into the frames\' buffers)', () => {
  const frames = [
    frame(T.OK, 1, body(4, 1)),
    frame(T.WRITE, 2, body(1_048_600, 2)), // a 1 MiB write: a buffer of its own
    frame(T.DATA, 3, body(100_000, 3)),
    frame(T.DATA, 4, Buffer.alloc(0)), // the end of a file
    frame(T.END, 3),
    frame(T.DATA, 5, body(5, 4)),
    frame(T.CALL, 6, body(SMALL - FRAME_HEADER, 5)), // the largest frame gathered in the scratch buffer
    frame(T.CALL, 7, body(SMALL - FRAME_HEADER + 1, 6)), // the smallest with a buffer of its own
    frame(T.ERROR, 8, body(30, 7)),
    frame(T.DATA, 9, body(SMALL + 10, 8)),
  ]
  const stream = Buffer.concat(frames)
  const expected = frames.map(f => [f[4], f.readUInt32BE(5)])
  const chunkings = [[stream.length], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 4096], [3, 5000, 7], [9], [16_384], [4, 100_000], [65_536], [SMALL - 1, 2]]

  for (const sizes of chunkings) {
    it(`assembles every frame, none streamed (bytes arriving ${sizes.join(', ')} at a time)`, () => {
      const a = new FrameAssembler(MAX_FRAME)
      const got = feed(a, stream, sizes)
      expect(got.map(f => [f.type, f.id, f.more])).to.deep.equal(frames.map(f => [f[4], f.readUInt32BE(5), undefined]))
      got.forEach((f, i) => expect(f.body.equals(frames[i].subarray(FRAME_HEADER)), `frame ${i}`).to.equal(true))
    })

    it(`hands DATA bodies out in pieces, the others whole (bytes arriving ${sizes.join(', ')} at a time; also through push)`, () => {
      const streamed = (t: number) => t === T.DATA
      for (const how of ['room', 'push']) {
        const a = new FrameAssembler(MAX_FRAME, undefined, streamed)
        let got: Frame[]
        if (how === 'room') got = feed(a, stream, sizes)
        else {
          got = []
          for (let at = 0, i = 0; at < stream.length; i++) {
            const n = Math.min(sizes[i % sizes.length], stream.length - at)
            got.push(...a.push(stream.subarray(at, at + n)))
            at += n
          }
        }

        const w = whole(got, streamed)
        expect(w.map(f => [f.type, f.id])).to.deep.equal(expected)
        w.forEach((f, i) => expect(f.body.equals(frames[i].subarray(FRAME_HEADER)), `${how}: frame ${i}`).to.equal(true))
        // the pieces are views that later bytes did not overwrite
        const again = whole(got.map(f => ({...f, body: Buffer.from(f.body)})), streamed)
        again.forEach((f, i) => expect(f.body.equals(frames[i].subarray(FRAME_HEADER)), `${how}: frame ${i} later`).to.equal(true))
      }
    })
  }

  it('a large frame lands in the buffer alloc gave, and its body is a view of it', () => {
    const given: Buffer[] = []
    const a = new FrameAssembler(MAX_FRAME, n => {
      const b = Buffer.allocUnsafeSlow(n + 100)
      given.push(b)
      return b
    })
    const f = frame(T.WRITE, 42, body(500_000, 9))
    const got = feed(a, Buffer.concat([frame(T.OK, 1, body(3, 1)), f]), [20, 16_384])
    expect(given).to.have.length(1) // not for the small frame
    expect(got.map(x => x.id)).to.deep.equal([1, 42])
    expect(got[1].body.buffer).to.equal(given[0].buffer)
    expect(got[1].body.equals(f.subarray(FRAME_HEADER))).to.equal(true)
  })

  it('once a large frame\'s header is in, room() is the rest of that frame and no more', () => {
    const a = new FrameAssembler(MAX_FRAME)
    const f = frame(T.WRITE, 7, body(300_000, 2))
    const next = frame(T.OK, 8, body(4, 3))
    expect(feed(a, f.subarray(0, 1000), [1000])).to.deep.equal([])
    expect(a.room().length).to.equal(f.length - 1000)
    const got = feed(a, Buffer.concat([f.subarray(1000), next]), [1 << 20])
    expect(got.map(x => [x.type, x.id])).to.deep.equal([[T.WRITE, 7], [T.OK, 8]])
  })

  it('a DATA piece is handed out before the rest of its frame has arrived', () => {
    const a = new FrameAssembler(MAX_FRAME, undefined, t => t === T.DATA)
    const f = frame(T.DATA, 9, body(200_000, 5))
    const first = feed(a, f.subarray(0, FRAME_HEADER + 1000), [1 << 20])
    expect(first.map(x => [x.id, x.more, x.body.length])).to.deep.equal([[9, true, 1000]])
    expect(first[0].body.equals(f.subarray(FRAME_HEADER, FRAME_HEADER + 1000))).to.equal(true)
    const rest = feed(a, f.subarray(FRAME_HEADER + 1000), [150_000])
    expect(rest.map(x => [x.id, x.more, x.body.length])).to.deep.equal([[9, true, 150_000], [9, false, 49_000]])
  })

  it('refuses a frame longer than its limit (also once the limit is raised and lowered), and one shorter than a header', () => {
    const long = frame(T.DATA, 1, Buffer.alloc(5000))
    expect(() => new FrameAssembler(4096).push(long)).to.throw(RangeError)
    expect(() => new FrameAssembler(4096, undefined, () => true).push(long)).to.throw(RangeError)
    expect(() => new FrameAssembler(4096).push(long.subarray(0, 4))).to.throw(RangeError) // known from its length alone
    const a = new FrameAssembler(4096)
    a.limit = MAX_FRAME
    expect(a.push(long).map(f => f.body.length)).to.deep.equal([5000])
    expect(() => new FrameAssembler(MAX_FRAME).push(frame(T.WRITE, 1, Buffer.alloc(MAX_FRAME)))).to.throw(RangeError)
    for (const len of [0, 1, 4]) {
      const short = Buffer.alloc(4 + len)
      short.writeUInt32BE(len)
      expect(() => new FrameAssembler(4096, undefined, () => true).push(short), `length ${len}`).to.throw(RangeError)
    }
  })
})
