import {expect} from 'chai'
import {randomBytes} from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {Journal, WRITER_CACHE_KIB} from '../../../src/volume/journal.js'

describe('journal: a bounded SQLite page cache', () => {
  let dir: string
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paciofs-journal-cache-'))
  })
  afterEach(() => fs.rmSync(dir, {recursive: true, force: true}))

  it('the writer keeps at most WRITER_CACHE_KIB (not better-sqlite3\'s 16 MB), and a journal larger than that still reads and places', async () => {
    const file = path.join(dir, 'journal.db')
    const journal = Journal.open(file, 'vol-1')
    expect(journal.pageCacheKib()).to.equal(WRITER_CACHE_KIB)
    expect(WRITER_CACHE_KIB).to.be.at.most(4096)
    const hashes: Buffer[] = []
    for (let b = 0; b < 40; b++) {
      const rows = Array.from({length: 500}, (_, i) => ({hash: randomBytes(32), salt: randomBytes(32), record: randomBytes(300), op: 'create', path: `/d/f${b * 500 + i}`, at: Date.now()}))
      hashes.push(...rows.map(r => r.hash))
      journal.append(rows)
    }

    expect(fs.statSync(file).size + fs.statSync(`${file}-wal`).size, 'larger than the cache').to.be.above(WRITER_CACHE_KIB * 1024 * 2)
    expect(journal.count()).to.equal(20_000)
    // placements look rows up by their hash, across the whole index
    journal.place([hashes[7], hashes[19_000]].map((hash, seq) => ({hash, epoch: 1, txid: 'ab', pid: 'p', seq})))
    expect(journal.unplaced()).to.have.length(20_000 - 2)
    await journal.close()
    const reader = Journal.open(file, 'vol-1', {readonly: true})
    expect(reader.pageCacheKib()).to.equal(2048)
    expect(reader.count()).to.equal(20_000)
    await reader.close()
  })
})
