import {expect} from 'chai'
import {LentBuffers} from '../../../src/remote/lent-buffers.js'

describe('remote: buffers lent out in pieces (the data channel\'s receive buffers)', () => {
  it('a buffer is used again only once its frame is complete and every piece is back', () => {
    const p = new LentBuffers(1024, 4)
    const a = p.get(1000)
    const pieces = [a.subarray(0, 300), a.subarray(300, 600), a.subarray(600, 1000)]
    p.handed(pieces[0], false)
    p.handed(pieces[1], false)
    p.release(pieces[0])
    p.release(pieces[1])
    expect(p.get(1000).buffer, 'the frame is still arriving').to.not.equal(a.buffer)
    p.handed(pieces[2], true)
    expect(p.get(1000).buffer, 'its last piece is out').to.not.equal(a.buffer)
    p.release(pieces[2])
    expect(p.kept).to.equal(1)
    const again = p.get(10)
    expect(again.buffer).to.equal(a.buffer)
    expect(again.length).to.equal(1024)
  })

  it('a piece still held keeps its buffer from being used again, in whatever order the others come back', () => {
    const p = new LentBuffers(1024, 4)
    const a = p.get(1024)
    const pieces = [a.subarray(0, 512), a.subarray(512)]
    p.handed(pieces[0], false)
    p.handed(pieces[1], true)
    p.release(pieces[1])
    expect(p.kept).to.equal(0)
    p.release(pieces[0])
    expect(p.kept).to.equal(1)
  })

  it('a frame nobody reads gives its buffer back when it ends; views of other buffers and larger ones are ignored', () => {
    const p = new LentBuffers(1024, 1)
    const a = p.get(1024)
    p.dropped(a.subarray(0, 100), false)
    expect(p.kept).to.equal(0)
    p.dropped(a.subarray(100), true)
    expect(p.kept).to.equal(1)
    const big = p.get(5000)
    expect(big.length).to.equal(5000)
    p.handed(big, true)
    p.release(big)
    p.release(Buffer.alloc(10))
    expect(p.kept).to.equal(1)
    // at most `keep` free ones
    const [x, y] = [p.get(1), p.get(1)]
    p.dropped(x, true)
    p.dropped(y, true)
    expect(p.kept).to.equal(1)
  })
})
