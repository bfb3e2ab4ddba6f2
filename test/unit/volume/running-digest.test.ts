// The running digest of a sequential writer: whole blocks written and hashed
// on the thread pool (one job each), anything else hashed at once; either
// way it must be the SHA-256 of exactly the bytes the file holds.
import {expect} from 'chai'
import {createHash, randomBytes} from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {RunningDigest} from '../../../src/volume/running-digest.js'
import {sys} from '../../../src/volume/sys.js'

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

describe('RunningDigest', () => {
  let dir: string
  let fd: number
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pacio-running-'))
    fd = fs.openSync(path.join(dir, 'f'), 'w+')
  })
  afterEach(() => {
    fs.closeSync(fd)
    fs.rmSync(dir, {recursive: true, force: true})
  })

  /** Writes `data` in pieces of the given sizes, each on the pool where it fits, else synchronously. */
  async function write(r: RunningDigest, data: Buffer, sizes: number[]): Promise<{pooled: number}> {
    let at = 0
    let pooled = 0
    for (let i = 0; at < data.length; i++) {
      const piece = data.subarray(at, at + sizes[i % sizes.length])
      if (r.fitsPool(at, piece.length)) {
        pooled++
        expect(await r.writeOnPool(fd, piece, at)).to.equal(piece.length)
      } else {
        fs.writeSync(fd, piece, 0, piece.length, at)
        expect(r.add(at, piece)).to.equal(true)
      }

      at += piece.length
    }

    return {pooled}
  }

  for (const [name, sizes] of [
    ['whole MiB writes', [1 << 20]],
    ['odd sizes (a tail of less than a block carried over)', [100_000, 65_536 + 7, 3, 128 * 1024]],
    ['blocks after a tail is filled', [10, 54, 65_536, 1]],
  ] as const) {
    it(`is the SHA-256 of what the file holds: ${name}`, async () => {
      const data = randomBytes(3 * (1 << 20) + 4321)
      const r = new RunningDigest()
      const {pooled} = await write(r, data, [...sizes])
      expect(r.size).to.equal(data.length)
      expect(r.digest()).to.equal(sha(data))
      expect(fs.readFileSync(path.join(dir, 'f')).equals(data)).to.equal(true)
      if (name === 'whole MiB writes') expect(pooled, 'whole blocks went to the pool').to.equal(3)
    })
  }

  it('pool writes dispatched at once are hashed in order; no digest while any is under way', async () => {
    const data = randomBytes(8 * 65_536)
    const r = new RunningDigest()
    const runs: Array<Promise<number>> = []
    for (let at = 0; at < data.length; at += 65_536) {
      expect(r.fitsPool(at, 65_536), `at ${at}`).to.equal(true)
      runs.push(r.writeOnPool(fd, data.subarray(at, at + 65_536), at))
    }

    expect(r.digest(), 'under way').to.equal(undefined)
    expect(r.add(data.length, Buffer.from('x')), 'a synchronous write while pool writes are under way').to.equal(false)
    await Promise.all(runs)
    await r.settled()
    expect(r.digest()).to.equal(sha(data))
  })

  it('a write elsewhere does not continue it; a failed pool write breaks it and reports the errno', async () => {
    const r = new RunningDigest()
    expect(r.fitsPool(64, 65_536), 'not at the end').to.equal(false)
    expect(r.add(5, Buffer.from('x'))).to.equal(false)
    const ro = fs.openSync(path.join(dir, 'f'), 'r')
    try {
      let code: string | undefined
      await r.writeOnPool(ro, Buffer.alloc(65_536), 0).catch((e: NodeJS.ErrnoException) => (code = e.code))
      expect(code).to.equal('EBADF')
    } finally {
      fs.closeSync(ro)
    }

    expect(r.broken).to.equal(true)
    expect(r.digest()).to.equal(undefined)
  })

  it('writeHashJob refuses a chain step that is not whole blocks, and writes without hashing when out is null', async () => {
    expect(() => sys.writeHashJob(Buffer.alloc(65), fd, 0, null, 0, Buffer.alloc(32))).to.throw(/whole 64-byte blocks/)
    expect(await sys.writeHashJob(Buffer.from('hello'), fd, 3, null, 0, null)).to.equal(5)
    expect(fs.readFileSync(path.join(dir, 'f')).subarray(3).toString()).to.equal('hello')
  })
})
