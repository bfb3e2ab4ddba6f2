// Recorder and a busy journal (another connection held its lock past the busy timeout: seen with
// a mount's WAL checkpoint under a profiler, whose signals cut SQLite's busy waits short). Records
// and intents are written again a little later instead of failing the operation (and, for a
// record, every later one); where each hash landed on the ledger (written behind the records)
// likewise; any other error fails the recorder, and none escapes from a timer (a placement's
// used to end the mount's process, leaving a stale mount).
import {expect} from 'chai'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {Journal, type Placement} from '../../../src/volume/journal.js'
import {Recorder} from '../../../src/volume/recorder.js'
import {InstantBroadcast} from '../../fakes/instant-broadcast.js'

const root = {uid: 0, gid: 0, pid: 1}

/** A journal whose place() fails with `error` the first `times` calls, then writes. */
class FlakyJournal {
  calls = 0
  constructor(readonly journal: Journal, private readonly error: Error, private times: number) {
    const place = journal.place.bind(journal)
    journal.place = (batch: Placement[]) => {
      this.calls++
      if (this.times-- > 0) throw this.error
      return place(batch)
    }
  }
}

function sqliteError(code: string): Error {
  return Object.assign(new Error(code === 'SQLITE_BUSY' ? 'database is locked' : 'disk I/O error'), {code})
}

/** Makes journal.<method> throw `error` the first `times` calls; counts the calls. */
function flaky(journal: Journal, method: 'append' | 'intend', error: Error, times: number): {calls: number} {
  const counter = {calls: 0}
  const real = (journal[method] as (...a: unknown[]) => unknown).bind(journal)
  ;(journal as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
    counter.calls++
    if (times-- > 0) throw error
    return real(...args)
  }
  return counter
}

describe('Recorder and a busy journal', () => {
  let dir: string
  let journal: Journal

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pacio-place-'))
    journal = Journal.open(path.join(dir, 'journal.db'), 'vol-1')
  })

  afterEach(async () => {
    await journal.close()
    fs.rmSync(dir, {recursive: true, force: true})
  })

  it('writes them again after a busy journal, and committed() waits until they are written', async () => {
    const flaky = new FlakyJournal(journal, sqliteError('SQLITE_BUSY'), 3)
    const rec = new Recorder(journal, new InstantBroadcast(), 'm')
    for (let i = 0; i < 5; i++) await rec.record({op: 'mkdir', path: `/d${i}`}, root)
    await rec.committed()
    expect(flaky.calls).to.be.greaterThan(3)
    expect(journal.unplaced(), 'every row placed').to.deep.equal([])
    expect([...journal.iterate()].map(r => r.epoch)).to.deep.equal([1, 2, 3, 4, 5])
  })

  it('writes records again after a busy journal, in order, with those made meanwhile', async () => {
    const append = flaky(journal, 'append', sqliteError('SQLITE_BUSY'), 2)
    const rec = new Recorder(journal, new InstantBroadcast(), 'm')
    const first = rec.record({op: 'mkdir', path: '/a'}, root)
    await new Promise(resolve => setTimeout(resolve, 5)) // the first attempt failed; /b comes meanwhile
    const second = rec.record({op: 'mkdir', path: '/b'}, root)
    await Promise.all([first, second])
    expect(append.calls).to.equal(3)
    expect([...journal.iterate()].map(r => r.path)).to.deep.equal(['/a', '/b'])
    await rec.record({op: 'mkdir', path: '/c'}, root) // not failed for good
    await rec.committed()
    expect(journal.unplaced()).to.deep.equal([])
  })

  it('notes an intent again after a busy journal', async () => {
    const intend = flaky(journal, 'intend', sqliteError('SQLITE_BUSY'), 2)
    const rec = new Recorder(journal, new InstantBroadcast(), 'm')
    const intent = await rec.intend('create', '/f')
    expect(intend.calls).to.equal(3)
    expect(journal.intents().map(i => [i.id, i.path])).to.deep.equal([[intent.id, '/f']])
  })

  it('fails a record, and the ones after, on any other journal error', async () => {
    flaky(journal, 'append', sqliteError('SQLITE_IOERR'), 1)
    const rec = new Recorder(journal, new InstantBroadcast(), 'm')
    let code: string | undefined
    await rec.record({op: 'mkdir', path: '/a'}, root).catch(error => (code = error.code))
    expect(code).to.equal('SQLITE_IOERR')
    code = undefined
    await rec.record({op: 'mkdir', path: '/b'}, root).catch(error => (code = error.code))
    expect(code).to.equal('SQLITE_IOERR')
  })

  it('fails the recorder on any other error instead of throwing from the timer', async () => {
    new FlakyJournal(journal, sqliteError('SQLITE_IOERR'), 1) // eslint-disable-line no-new
    const uncaught: unknown[] = []
    const onUncaught = (e: unknown) => uncaught.push(e)
    process.prependListener('uncaughtException', onUncaught)
    try {
      const rec = new Recorder(journal, new InstantBroadcast(), 'm')
      await rec.record({op: 'mkdir', path: '/d'}, root)
      let failed: unknown
      await rec.committed().catch(error => (failed = error))
      expect((failed as {code?: string} | undefined)?.code).to.equal('SQLITE_IOERR')
      await new Promise(resolve => setTimeout(resolve, 100))
      expect(uncaught).to.deep.equal([])
    } finally {
      process.removeListener('uncaughtException', onUncaught)
    }
  })
})
