import Database from 'better-sqlite3'
import {expect} from 'chai'
import {mkdtempSync, rmSync, statSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {generateIdentity} from '../../../src/crypto/sign.js'
import {EmbeddedLedger} from '../../../src/ledger/embedded/index.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe("ledger/embedded: the worker writer's WAL checkpoints run on a thread of their own", () => {
  let dir: string
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'pacio-ledger-ckpt-'))))
  afterEach(() => rmSync(dir, {recursive: true, force: true}))

  it('copies committed blocks into the file between commits, well before SQLite would (1,000 pages), and keeps every append', async function () {
    this.timeout(30_000)
    const file = join(dir, 'ledger.db')
    const l = await EmbeddedLedger.open({file, ledgerId: 'vol-C', identity: generateIdentity(), writer: 'worker'})
    const before = statSync(file).size
    // about 60 pages of WAL: far below SQLite's automatic checkpoint
    const sent: Buffer[] = Array.from({length: 200}, (_, i) => Buffer.alloc(1000, i % 251).fill(`p${i}`, 0, 6))
    const results = await Promise.all(Array.from({length: 10}, (_, k) => l.append(sent.slice(k * 20, k * 20 + 20))))
    let grown = false
    for (let t = 0; t < 40 && !grown; t++) {
      await sleep(100)
      grown = statSync(file).size >= before + 150_000
    }
    expect(grown, `${file} stayed at ${statSync(file).size} bytes`).to.equal(true)
    // a connection of its own reads every block from the file and the WAL alike
    const db = new Database(file, {readonly: true})
    try {
      const n = (db.prepare('SELECT total(ntx) AS n FROM blocks').get() as {n: number}).n
      expect(n).to.equal(200)
    } finally {
      db.close()
    }
    // and appends go on meanwhile, acknowledged in order
    const more = await l.append([Buffer.from('after the checkpoint')])
    expect(more[0].epoch).to.be.greaterThan(Math.max(...results.flat().map((c) => c.epoch)))
    await l.validateAll()
    await l.close()
  })
})
