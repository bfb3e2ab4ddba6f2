// The running digest of a sequential writer: whole blocks read back and
// hashed on the thread pool after the write (one job each, in order),
// anything else hashed at once; either way it must be the SHA-256 of exactly
// the bytes the file holds.
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

  const file = () => path.join(dir, 'f')

  /** Writes `data` in pieces of the given sizes; each hashed on the pool where it fits, else at once. */
  async function write(r: RunningDigest, data: Buffer, sizes: number[]): Promise<{pooled: number}> {
    let at = 0
    let pooled = 0
    for (let i = 0; at < data.length; i++) {
      const piece = data.subarray(at, at + sizes[i % sizes.length])
      fs.writeSync(fd, piece, 0, piece.length, at)
      if (r.fitsPool(at, piece.length)) {
        pooled++
        void r.hashLater(file(), at, piece.length) // not waited for: the next write goes on at once
      } else {
        expect(r.add(at, piece)).to.equal(true) // after the pool jobs before it, if any are under way
      }

      at += piece.length
    }

    await r.settled()
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

  it('while pool jobs are under way: no digest yet, and a small write is hashed after them', async () => {
    const data = randomBytes(8 * 65_536)
    fs.writeSync(fd, data, 0, data.length, 0)
    const r = new RunningDigest()
    for (let at = 0; at < data.length; at += 65_536) {
      expect(r.fitsPool(at, 65_536), `at ${at}`).to.equal(true)
      void r.hashLater(file(), at, 65_536)
    }

    expect(r.size).to.equal(data.length)
    expect(r.digest(), 'under way').to.equal(undefined)
    const x = Buffer.from('x')
    fs.writeSync(fd, x, 0, 1, data.length)
    expect(r.add(data.length, x), 'a small write while pool jobs are under way: hashed after them').to.equal(true)
    x.fill('y') // the caller's buffer may change: a copy waits
    expect(r.fitsPool(data.length + 1, 65_536), 'whole blocks after a tail').to.equal(false)
    await r.settled()
    expect(r.digest()).to.equal(sha(Buffer.concat([data, Buffer.from('x')])))
  })

  it('a write elsewhere does not continue it; bytes that cannot be read back break it', async () => {
    const r = new RunningDigest()
    expect(r.fitsPool(64, 65_536), 'not at the end').to.equal(false)
    expect(r.add(5, Buffer.from('x'))).to.equal(false)
    void r.hashLater(file(), 0, 65_536) // the file is empty: nothing to read back
    await r.settled()
    expect(r.broken).to.equal(true)
    expect(r.digest()).to.equal(undefined)
    const gone = new RunningDigest()
    await gone.hashLater(path.join(dir, 'missing'), 0, 64)
    expect(gone.broken).to.equal(true)
  })

  it('hashFileJob refuses a chain step that is not whole blocks, and rejects with the errno of a file it cannot open', async () => {
    expect(() => sys.hashFileJob(file(), 0, 65, null, 0, Buffer.alloc(32), Buffer.alloc(128))).to.throw(/whole 64-byte blocks/)
    let code: string | undefined
    await sys.hashFileJob(path.join(dir, 'missing'), 0, 64, null, 0, Buffer.alloc(32), Buffer.alloc(64)).catch((e: NodeJS.ErrnoException) => (code = e.code))
    expect(code).to.equal('ENOENT')
  })
})
