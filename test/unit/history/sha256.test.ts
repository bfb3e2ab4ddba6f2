import {expect} from 'chai'
import {createHash, randomBytes} from 'node:crypto'
import {hashChunk, step, stepNow, type ChainState} from '../../../src/history/sha256.js'

const CS = 256 * 1024

/** The digest of data computed as the store does: one step per `piece` bytes, the last one finishing. */
async function chained(data: Buffer, piece: number): Promise<{digest: string; marks: Buffer[]}> {
  let state: ChainState = null
  const marks: Buffer[] = []
  for (let off = 0; ; off += piece) {
    const part = data.subarray(off, off + piece)
    const last = off + piece >= data.length
    const s = await step(part, state, off, last)
    if (last) return {digest: s.after.toString('hex'), marks}
    marks.push(state = Buffer.from(s.after))
  }
}

describe('sha256 on the thread pool', () => {
  it('hashes a chunk as node:crypto does', async () => {
    for (const n of [0, 1, 64, 1000, CS]) {
      const data = randomBytes(n)
      expect(await hashChunk(data)).to.equal(createHash('sha256').update(data).digest('hex'))
    }
  })

  it('stepNow (on the calling thread) gives the same states and digest as the pool job', async () => {
    const data = randomBytes(3 * CS + 100)
    let state: ChainState = null
    for (let i = 0; i < 4; i++) {
      const part = data.subarray(i * CS, (i + 1) * CS)
      const last = i === 3
      const now = stepNow(part, state, i * CS, last)
      expect(now.equals((await step(part, state, i * CS, last)).after), `chunk ${i}`).to.equal(true)
      state = now
    }

    expect(state!.toString('hex')).to.equal(createHash('sha256').update(data).digest('hex'))
    expect(() => stepNow(data.subarray(0, 100), null, 0, false), 'a step that does not finish needs whole blocks').to.throw(/64-byte blocks/)
  })

  it('a chain of steps gives the digest of the whole, for any length and piece size', async () => {
    for (const [n, piece] of [[0, CS], [63, 64], [64, 64], [3 * CS, CS], [3 * CS + 17, CS], [5 * 64 + 1, 128]]) {
      const data = randomBytes(n)
      expect((await chained(data, piece)).digest, `${n} bytes in pieces of ${piece}`).to.equal(createHash('sha256').update(data).digest('hex'))
    }
  })

  it('each step can be checked on its own, at once, from the states between pieces', async () => {
    const data = randomBytes(6 * CS + 5)
    const {digest, marks} = await chained(data, CS)
    const steps = await Promise.all(Array.from({length: 7}, (_, i) =>
      step(data.subarray(i * CS, (i + 1) * CS), i === 0 ? null : marks[i - 1], i * CS, i === 6, true)))
    steps.forEach((s, i) => {
      expect(s.after.toString('hex')).to.equal(i === 6 ? digest : marks[i].toString('hex'))
      expect(s.hash).to.equal(createHash('sha256').update(data.subarray(i * CS, (i + 1) * CS)).digest('hex'))
    })
    const other = Buffer.from(data.subarray(2 * CS, 3 * CS))
    other[7] ^= 1
    expect((await step(other, marks[1], 2 * CS, false)).after.equals(marks[2]), 'other bytes do not reach the same state').to.equal(false)
  })

  it('refuses a step that does not lie between 64-byte blocks', async () => {
    const refused = (p: Promise<unknown>) => p.then(() => 'resolved', (error: Error) => error.message)
    expect(await refused(step(Buffer.alloc(100), null, 0, false))).to.match(/64-byte blocks/)
    expect(await refused(step(Buffer.alloc(64), null, 64, false))).to.match(/starts at 0/)
    expect(await refused(step(Buffer.alloc(64), Buffer.alloc(32), 32, true))).to.match(/between 64-byte blocks/)
    expect(await refused(step(Buffer.alloc(64), Buffer.alloc(31), 64, true))).to.match(/32 bytes/)
  })
})
