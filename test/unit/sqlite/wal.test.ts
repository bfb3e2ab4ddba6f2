import Database from 'better-sqlite3'
import {expect} from 'chai'
import {mkdtempSync, rmSync, statSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {checkpointWal} from '../../../src/sqlite/wal.js'
import {startCheckpointer} from '../../../src/volume/checkpointer.js'

const PAGE = 4096

/** A WAL database whose own connection never checkpoints. */
function open(file: string): Database.Database {
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = NORMAL')
  db.pragma('wal_autocheckpoint = 0')
  db.exec('CREATE TABLE IF NOT EXISTS t(x BLOB)')
  return db
}

/** Frames in the WAL now (a PASSIVE checkpoint of nothing new reports them). */
const frames = (db: Database.Database) => (db.pragma('wal_checkpoint(PASSIVE)') as Array<{log: number}>)[0].log

describe('sqlite/wal: background checkpoints keep the WAL bounded', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pacio-wal-'))
  })
  afterEach(() => rmSync(dir, {recursive: true, force: true}))

  it('below the limit only copies; past it empties the WAL file, so the next commit writes it from its start', () => {
    const file = join(dir, 'a.db')
    const db = open(file)
    const cp = new Database(file, {timeout: 100})
    const ins = db.prepare('INSERT INTO t(x) VALUES (?)')
    db.transaction(() => {
      for (let i = 0; i < 300; i++) ins.run(Buffer.alloc(4000, i))
    })()
    const long = checkpointWal(cp, 1000)
    expect(long.restarted).to.equal(false)
    expect(long.log).to.be.greaterThan(300)
    expect(checkpointWal(cp, 100)).to.deep.include({restarted: true})
    expect(statSync(`${file}-wal`).size).to.equal(0)
    ins.run(Buffer.alloc(4000, 1))
    expect(frames(cp)).to.be.lessThan(10) // begun anew, not appended after the 300+ frames
    expect(db.prepare('SELECT count(*) AS n FROM t').get()).to.deep.equal({n: 301})
    cp.close()
    db.close()
  })

  it('a TRUNCATE that cannot get the writer\'s lock gives up after the busy timeout and reports it', () => {
    const file = join(dir, 'b.db')
    const db = open(file)
    const cp = new Database(file, {timeout: 50})
    const ins = db.prepare('INSERT INTO t(x) VALUES (?)')
    for (let i = 0; i < 50; i++) ins.run(Buffer.alloc(4000, i))
    db.exec('BEGIN IMMEDIATE') // a writer in the middle of a transaction
    ins.run(Buffer.alloc(4000, 9))
    const t0 = performance.now()
    const r = checkpointWal(cp, 10)
    expect(r.restarted).to.equal(false)
    expect(performance.now() - t0).to.be.lessThan(2000)
    db.exec('COMMIT')
    expect(checkpointWal(cp, 10).restarted).to.equal(true) // the next round does it
    cp.close()
    db.close()
  })

  it('no TRUNCATE while PASSIVE rounds leave many frames uncopied (it would hold the writer for their copy): the next round does it', () => {
    const file = join(dir, 'c.db')
    const db = open(file)
    const reader = new Database(file)
    const cp = new Database(file, {timeout: 1000})
    const ins = db.prepare('INSERT INTO t(x) VALUES (?)')
    for (let i = 0; i < 50; i++) ins.run(Buffer.alloc(4000, i))
    reader.exec('BEGIN')
    reader.prepare('SELECT count(*) FROM t').get() // a snapshot: PASSIVE copies no frame past it
    db.transaction(() => {
      for (let i = 0; i < 200; i++) ins.run(Buffer.alloc(4000, i))
    })()
    const t0 = performance.now()
    const r = checkpointWal(cp, 10)
    const ms = performance.now() - t0
    expect(r.restarted).to.equal(false)
    expect(r.log).to.be.greaterThan(200)
    expect(ms, 'a TRUNCATE would have waited the 1 s busy timeout for the reader').to.be.lessThan(500)
    reader.exec('COMMIT')
    expect(checkpointWal(cp, 10).restarted).to.equal(true)
    expect(statSync(`${file}-wal`).size).to.equal(0)
    reader.close()
    cp.close()
    db.close()
  })

  /** A writer committing 4 KB rows one transaction each (as a mount's journal writes), with `restartFrames` for the
   * checkpoint thread; stops after `until` says so. Returns how often the WAL file got smaller, and its largest size. */
  async function steadyWriter(restartFrames: number, until: (emptied: number, rows: number) => boolean) {
    const file = join(dir, `w-${restartFrames}.db`)
    const db = open(file)
    const cp = startCheckpointer(db, file, 5, undefined, restartFrames)
    const ins = db.prepare('INSERT INTO t(x) VALUES (?)')
    const del = db.prepare('DELETE FROM t WHERE rowid < ?')
    let last = 0
    let emptied = 0
    let max = 0
    for (let i = 1; !until(emptied, i); i++) {
      ins.run(Buffer.alloc(4000, i))
      if (i % 100 === 0) {
        del.run(i - 100) // the table itself stays small: only the WAL can grow
        const size = statSync(`${file}-wal`).size
        if (size < last) emptied++
        last = size
        max = Math.max(max, size)
        await new Promise(r => setTimeout(r, 2)) // the checkpoint thread runs meanwhile anyway; this only paces the loop
      }
    }
    await cp.stop()
    db.close()
    return {emptied, maxFrames: max / PAGE}
  }

  it('a writer committing without pause, checkpointed on another thread: the WAL file is emptied again and again', async function () {
    this.timeout(60_000)
    const deadline = performance.now() + 30_000
    const r = await steadyWriter(256, (emptied) => emptied >= 3 || performance.now() > deadline)
    expect(r.emptied, 'times the WAL file was truncated').to.be.at.least(3)
  })

  it('with PASSIVE checkpoints alone the WAL file never gets smaller (what the TRUNCATE is for)', async function () {
    this.timeout(60_000)
    const r = await steadyWriter(Number.MAX_SAFE_INTEGER, (_, rows) => rows > 2000)
    expect(r.emptied).to.equal(0)
  })
})
