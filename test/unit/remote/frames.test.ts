import {expect} from 'chai'
import {frame, FRAME_HEADER, FrameReader, MAX_FRAME, T, type Frame} from '../../../src/remote/frames.js'

/** Cuts bytes into pieces of the given sizes (cycled). */
function cut(bytes: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = []
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = Math.min(sizes[i % sizes.length], bytes.length - at)
    out.push(bytes.subarray(at, at + n))
    at += n
  }

  return out
}

const body = (n: number, seed: number) => Buffer.from(Array.from({length: n}, (_, i) => (i * 7 + seed) % 256))

describe('remote: data channel framing', () => {
  const frames = [
    frame(T.OK, 1, body(4, 1)),
    frame(T.DATA, 2, body(100_000, 2)),
    frame(T.DATA, 3, Buffer.alloc(0)), // the end of a file
    frame(T.END, 2),
    frame(T.DATA, 4, body(5, 3)),
    frame(T.ERROR, 5, body(30, 4)),
  ]
  const stream = Buffer.concat(frames)

  for (const sizes of [[stream.length], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 4096], [3, 5000, 7], [9], [16_384], [4, 100_000]]) {
    it(`without streamed types, assembles every frame (received in pieces of ${sizes.join(', ')} bytes)`, () => {
      const r = new FrameReader(MAX_FRAME)
      const got = cut(stream, sizes).flatMap(c => r.push(c))
      expect(got.map(f => [f.type, f.id, f.more])).to.deep.equal(frames.map(f => [f[4], f.readUInt32BE(5), undefined]))
      got.forEach((f, i) => expect(f.body.equals(frames[i].subarray(FRAME_HEADER))).to.equal(true))
    })

    it(`hands DATA bodies out in pieces as they arrive, the others whole (received in pieces of ${sizes.join(', ')} bytes)`, () => {
      const chunks = cut(stream, sizes)
      const r = new FrameReader(MAX_FRAME, undefined, type => type === T.DATA)
      const got: Frame[] = []
      for (const c of chunks) {
        const out = r.push(c)
        for (const f of out) {
          if (f.type !== T.DATA || f.body.length === 0) continue
          // a piece is a view of the received bytes (not a copy)
          expect(f.body.buffer === stream.buffer && f.body.byteOffset >= c.byteOffset && f.body.byteOffset + f.body.length <= c.byteOffset + c.length, 'a view of the chunk just received').to.equal(true)
        }

        got.push(...out)
      }

      // put the pieces together again: the same frames, each piece but a frame's last with `more`
      const whole: Array<{type: number; id: number; body: Buffer}> = []
      let open: {type: number; id: number; parts: Buffer[]} | undefined
      for (const f of got) {
        if (f.type !== T.DATA) {
          expect(open, 'a frame inside a streamed one').to.equal(undefined)
          expect(f.more).to.equal(undefined)
          whole.push(f)
          continue
        }

        if (open) expect(f.id).to.equal(open.id)
        open ??= {type: f.type, id: f.id, parts: []}
        open.parts.push(f.body)
        if (f.more) {
          expect(f.body.length).to.be.greaterThan(0)
          continue
        }

        whole.push({type: open.type, id: open.id, body: Buffer.concat(open.parts)})
        open = undefined
      }

      expect(open).to.equal(undefined)
      expect(whole.map(f => [f.type, f.id])).to.deep.equal(frames.map(f => [f[4], f.readUInt32BE(5)]))
      whole.forEach((f, i) => expect(f.body.equals(frames[i].subarray(FRAME_HEADER))).to.equal(true))
    })
  }

  it('a DATA piece is handed out before the rest of its frame has arrived', () => {
    const r = new FrameReader(MAX_FRAME, undefined, type => type === T.DATA)
    const f = frame(T.DATA, 9, body(200_000, 5))
    const first = r.push(f.subarray(0, FRAME_HEADER + 1000))
    expect(first).to.have.length(1)
    expect(first[0].more).to.equal(true)
    expect(first[0].body.equals(f.subarray(FRAME_HEADER, FRAME_HEADER + 1000))).to.equal(true)
    const rest = r.push(f.subarray(FRAME_HEADER + 1000))
    expect(rest.map(x => [x.id, x.more, x.body.length])).to.deep.equal([[9, false, 199_000]])
  })

  it('refuses a frame longer than its limit, streamed or not', () => {
    const long = frame(T.DATA, 1, Buffer.alloc(5000))
    expect(() => new FrameReader(4096).push(long)).to.throw(RangeError)
    expect(() => new FrameReader(4096, undefined, () => true).push(long)).to.throw(RangeError)
    const empty = Buffer.from([0, 0, 0, 1, T.DATA])
    expect(() => new FrameReader(4096, undefined, () => true).push(empty)).to.throw(RangeError)
  })
})
