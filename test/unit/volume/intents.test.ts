// Crash recovery of entries made on disk whose record never reached the journal.
import {expect} from 'chai'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {randomBytes} from 'node:crypto'
import {Journal} from '../../../src/volume/journal.js'
import {undoUnrecorded} from '../../../src/volume/intents.js'

describe('intents: undoing entries a crash left without their record', () => {
  let dir: string
  let root: string
  let journal: Journal

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paciofs-intents-'))
    root = path.join(dir, 'root')
    fs.mkdirSync(root)
    journal = Journal.open(path.join(dir, 'journal.db'), 'vol-1')
  })

  afterEach(async () => {
    await journal.close()
    fs.rmSync(dir, {recursive: true, force: true})
  })

  const record = (op: string, p: string) => journal.append([{hash: randomBytes(32), salt: randomBytes(32), record: Buffer.from('{}'), op, path: p, at: Date.now()}])

  it('removes an empty file, a symlink and an empty directory made after their intent and never recorded', () => {
    journal.intend('create', '/a')
    fs.writeFileSync(path.join(root, 'a'), '')
    journal.intend('symlink', '/l')
    fs.symlinkSync('/etc/passwd', path.join(root, 'l'))
    journal.intend('mkdir', '/d')
    fs.mkdirSync(path.join(root, 'd'))

    const res = undoUnrecorded(journal, root)
    expect(res.map(r => [r.path, r.undone])).to.deep.equal([['/a', true], ['/l', true], ['/d', true]])
    expect(fs.readdirSync(root)).to.deep.equal([])
    expect(journal.intents()).to.deep.equal([])
  })

  it('keeps entries whose record is journaled, that existed before the intent, that are not empty, or that are gone', async () => {
    journal.intend('create', '/recorded')
    fs.writeFileSync(path.join(root, 'recorded'), '')
    record('create', '/recorded')

    fs.writeFileSync(path.join(root, 'older'), '')
    await new Promise(r => setTimeout(r, 200)) // ctime well before the intent
    journal.intend('create', '/older')

    journal.intend('create', '/full')
    fs.writeFileSync(path.join(root, 'full'), 'bytes')

    journal.intend('create', '/never')

    journal.intend('mkdir', '/dir')
    fs.mkdirSync(path.join(root, 'dir'))
    fs.writeFileSync(path.join(root, 'dir', 'x'), '')

    const res = undoUnrecorded(journal, root)
    expect(res.filter(r => r.undone)).to.deep.equal([])
    expect(fs.readdirSync(root).sort()).to.deep.equal(['dir', 'full', 'older', 'recorded'])
    expect(journal.intents()).to.deep.equal([])
  })

  it('removes an entry whose path was last recorded as removed', () => {
    record('create', '/again')
    record('unlink', '/again')
    journal.intend('create', '/again')
    fs.writeFileSync(path.join(root, 'again'), '')
    expect(undoUnrecorded(journal, root).map(r => r.undone)).to.deep.equal([true])
    expect(fs.existsSync(path.join(root, 'again'))).to.equal(false)
  })

  it('an operation that completes drops its intent', () => {
    const id = journal.intend('create', '/ok')
    journal.settleIntent(id)
    expect(journal.intents()).to.deep.equal([])
  })

  it('an intent dropped with its record goes in the same transaction: both or neither', () => {
    const kept = journal.intend('create', '/other')
    const id = journal.intend('create', '/with-record')
    const row = {hash: randomBytes(32), salt: randomBytes(32), record: Buffer.from('{}'), op: 'create', path: '/with-record', at: Date.now()}
    journal.append([row], [id])
    expect(journal.intents().map(i => i.id)).to.deep.equal([kept])
    expect(journal.latestOpAt('/with-record')).to.equal('create')

    // a failing insert (a value SQLite cannot bind) rolls the intent's removal back too
    const id2 = journal.intend('create', '/fails')
    expect(() => journal.append([{...row, hash: randomBytes(32), at: {} as unknown as number}], [id2])).to.throw()
    expect(journal.intents().map(i => i.id)).to.deep.equal([kept, id2])
  })
})
