import Database from 'better-sqlite3'
import {expect} from 'chai'
import {mkdtempSync, rmSync, statSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {generateIdentity} from '../../../src/crypto/sign.js'
import {PacioError} from '../../../src/errors.js'
import {EmbeddedLedger} from '../../../src/ledger/embedded/index.js'
import {startCheckpointer} from '../../../src/volume/checkpointer.js'

/** A WAL database whose own connection never checkpoints, with `pages` pages written to its WAL. */
function walFile(file: string, pages: number): Database.Database {
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.pragma('wal_autocheckpoint = 0')
  db.exec('CREATE TABLE t(x BLOB)')
  const ins = db.prepare('INSERT INTO t(x) VALUES (?)')
  db.transaction(() => {
    for (let i = 0; i < pages; i++) ins.run(Buffer.alloc(4000, i))
  })()
  return db
}

describe('ledger/embedded: WAL checkpoints of another file on the writer thread', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pacio-hosted-'))
  })
  afterEach(() => rmSync(dir, {recursive: true, force: true}))

  const openLedger = (writer: 'worker' | 'inline') =>
    EmbeddedLedger.open({file: join(dir, 'ledger.db'), ledgerId: 'vol-H', identity: generateIdentity(), writer})

  it('copies the WAL into the file while the ledger keeps committing, and stops on request', async () => {
    const file = join(dir, 'journal.db')
    const db = walFile(file, 200)
    const before = statSync(file).size
    const ledger = await openLedger('worker')
    const lost: string[] = []
    const job = await ledger.hostCheckpoints(file, 20, () => lost.push('lost'))!
    const committed = await ledger.append([Buffer.from('a'), Buffer.from('b')])
    expect(committed.map((c) => c.epoch)).to.deep.equal([1, 1])
    for (let i = 0; i < 100 && statSync(file).size <= before + 100 * 4000; i++) await sleep(20)
    expect(statSync(file).size).to.be.greaterThan(before + 100 * 4000) // pages went from the WAL into the file
    await job.stop()
    await job.stop() // twice is harmless
    await ledger.close()
    expect(lost).to.deep.equal([]) // stopped before the thread went away
    db.close()
  })

  it('refuses a file it cannot open, and has no thread to offer with an inline writer', async () => {
    const ledger = await openLedger('worker')
    try {
      await ledger.hostCheckpoints(join(dir, 'nope', 'missing.db'), 20, () => {})
      expect.fail('hosting a missing file succeeded')
    } catch (error) {
      expect(error).to.be.instanceOf(PacioError)
    }
    await ledger.close()
    expect(ledger.hostCheckpoints(join(dir, 'x.db'), 20, () => {})).to.equal(undefined) // closed
    const inline = await openLedger('inline')
    expect(inline.hostCheckpoints(join(dir, 'x.db'), 20, () => {})).to.equal(undefined)
    await inline.close()
  })

  it('startCheckpointer: on the host when it has one, SQLite\'s own checkpoints back if the host fails', async () => {
    const file = join(dir, 'journal.db')
    const db = walFile(file, 10)
    const ledger = await openLedger('worker')
    const cp = startCheckpointer(db, file, 20, ledger.hostCheckpoints.bind(ledger))
    expect(db.pragma('wal_autocheckpoint', {simple: true})).to.equal(0) // the host does them
    await cp.stop()
    await ledger.close()

    const failing = startCheckpointer(db, file, 20, () => Promise.reject(new Error('no thread')))
    await failing.stop()
    expect(db.pragma('wal_autocheckpoint', {simple: true})).to.equal(1000)
    db.close()
  })
})
