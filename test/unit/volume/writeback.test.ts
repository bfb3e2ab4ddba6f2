import {expect} from 'chai'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {sys} from '../../../src/volume/sys.js'
import {Writeback} from '../../../src/volume/writeback.js'

const MIB = 1024 * 1024

/** A start function that records each kick and finishes it only when told. */
function recorder() {
  const kicks: Array<[number, number]> = []
  const open: Array<() => void> = []
  const start = async (_fd: number, offset: number, length: number) => {
    kicks.push([offset / MIB, length / MIB])
    await new Promise<void>(resolve => open.push(resolve))
  }

  const finish = async () => {
    open.shift()!()
    await new Promise(r => setImmediate(r))
  }

  return {kicks, open, start, finish}
}

describe('volume: early writeback of sequential writes', () => {
  it('kicks every step of a sequential run, one at a time, the next taking what came meanwhile', async () => {
    const r = recorder()
    const w = new Writeback(3, 8 * MIB, r.start)
    for (let i = 0; i < 7; i++) w.wrote(i * MIB, MIB)
    expect(r.kicks).to.deep.equal([])
    w.wrote(7 * MIB, MIB)
    expect(r.kicks).to.deep.equal([[0, 8]])
    for (let i = 8; i < 20; i++) w.wrote(i * MIB, MIB) // while the first runs: none
    expect(r.kicks).to.deep.equal([[0, 8]])
    await r.finish()
    w.wrote(20 * MIB, MIB)
    expect(r.kicks).to.deep.equal([[0, 8], [8, 13]])
    await r.finish()
  })

  it('a write elsewhere starts a new run; small and empty writes alone never kick', async () => {
    const r = recorder()
    const w = new Writeback(3, 8 * MIB, r.start)
    for (let i = 0; i < 6; i++) w.wrote(i * MIB, MIB)
    w.wrote(100 * MIB, MIB) // not where the run ended
    for (let i = 101; i < 107; i++) w.wrote(i * MIB, MIB)
    expect(r.kicks).to.deep.equal([])
    w.wrote(107 * MIB, MIB)
    expect(r.kicks).to.deep.equal([[100, 8]])
    await r.finish()
    w.wrote(108 * MIB, 0)
    for (let i = 0; i < 100; i++) w.wrote(i * 4096, 4096)
    expect(r.kicks).to.have.length(1)
  })

  it('idle() waits for the kick under way (the descriptor is closed after it); a failed kick is dropped', async () => {
    const r = recorder()
    const w = new Writeback(3, MIB, r.start)
    w.wrote(0, MIB)
    let idle = false
    const waiting = w.idle().then(() => (idle = true))
    await new Promise(r => setTimeout(r, 5))
    expect(idle).to.equal(false)
    await r.finish()
    await waiting
    expect(idle).to.equal(true)

    const failing = new Writeback(3, MIB, async () => {
      throw Object.assign(new Error('EIO'), {code: 'EIO'})
    })
    failing.wrote(0, MIB)
    await failing.idle() // does not throw: the file's fsync reports a writeback error
  })

  it('syncRangeJob starts the writeback of a real file\'s range; a bad descriptor is refused', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pacio-writeback-'))
    try {
      const fd = fs.openSync(path.join(dir, 'f'), 'w')
      fs.writeSync(fd, Buffer.alloc(4 * MIB, 1), 0, 4 * MIB, 0)
      await sys.syncRangeJob(fd, 0, 4 * MIB)
      fs.fsyncSync(fd)
      fs.closeSync(fd)
      // (not the closed fd: its number may be taken again meanwhile)
      const e = await sys.syncRangeJob(1_000_000, 0, MIB).then(() => undefined, (error: NodeJS.ErrnoException) => error)
      expect(e?.code).to.equal('EBADF')
    } finally {
      fs.rmSync(dir, {recursive: true, force: true})
    }
  })
})
