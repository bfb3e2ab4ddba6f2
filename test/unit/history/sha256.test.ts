import {expect} from 'chai'
import {createHash, randomBytes} from 'node:crypto'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {hashChunk, readStep, step, stepNow, type ChainState} from '../../../src/history/sha256.js'

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

  it('readStep: reads a chunk file and hashes it in one job; a file of another length is read but not hashed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pacio-readstep-'))
    try {
      const data = randomBytes(2 * CS)
      const {digest, marks} = await chained(data, CS)
      const f0 = join(dir, 'c0')
      const f1 = join(dir, 'c1')
      writeFileSync(f0, data.subarray(0, CS))
      writeFileSync(f1, data.subarray(CS))
      const buf = Buffer.alloc(CS + 1)
      const r0 = await readStep(f0, buf, CS, {hash: true, chain: {before: null, offset: 0, last: false}})
      expect(r0.got).to.equal(CS)
      expect(buf.subarray(0, CS).equals(data.subarray(0, CS))).to.equal(true)
      expect(r0.hash).to.equal(createHash('sha256').update(data.subarray(0, CS)).digest('hex'))
      expect(r0.after!.equals(marks[0])).to.equal(true)
      const r1 = await readStep(f1, buf, CS, {hash: false, chain: {before: marks[0], offset: CS, last: true}})
      expect(r1.hash).to.equal(undefined)
      expect(r1.after!.toString('hex')).to.equal(digest)

      writeFileSync(f1, Buffer.concat([data.subarray(CS), Buffer.from('x')])) // one byte longer
      expect(await readStep(f1, buf, CS, {hash: true})).to.deep.equal({got: CS + 1})
      writeFileSync(f1, data.subarray(CS, 2 * CS - 1)) // one byte shorter
      expect(await readStep(f1, buf, CS, {hash: true})).to.deep.equal({got: CS - 1})
      const missing = await readStep(join(dir, 'none'), buf, CS, {hash: true}).then(() => 'resolved', (error: NodeJS.ErrnoException) => error.code)
      expect(missing).to.equal('ENOENT')
      const short = await readStep(f0, Buffer.alloc(CS), CS, {hash: true}).then(() => 'resolved', (error: Error) => error.message)
      expect(short).to.match(/below data.length/) // the buffer must hold one byte more than the chunk
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })
})
