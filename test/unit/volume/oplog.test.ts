// The op log of creates and unlinks the FUSE binding made before their records
// were journaled: its format, recovery after a crash, and the refusal of readers.
import {expect} from 'chai'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {randomBytes} from 'node:crypto'
import {Journal} from '../../../src/volume/journal.js'
import {checkOpLog, encodeOpLogEntry, parseOpLog, pendingOpLog, recoverOpLog, type OpLogEntry} from '../../../src/volume/oplog.js'

const entry = (seq: number, op: 'create' | 'unlink', p: string, at = Date.now()): OpLogEntry => ({
  seq, at, op, path: p, who: {uid: 65534, gid: 100, pid: 4242},
  mode: op === 'create' ? 0o100644 : 0, uid: op === 'create' ? 65534 : 0, gid: op === 'create' ? 100 : 0, flags: op === 'create' ? 0o101 : 0,
})

describe('op log', () => {
  let dir: string
  let root: string
  let file: string

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paciofs-oplog-'))
    root = path.join(dir, 'root')
    fs.mkdirSync(root)
    file = path.join(dir, 'oplog')
  })

  afterEach(() => fs.rmSync(dir, {recursive: true, force: true}))

  it('reads back what it encodes, every field, in order', () => {
    const es = [entry(0, 'create', '/a b/ü'), entry(1, 'unlink', '/x'), entry(7, 'create', '/y')]
    expect(parseOpLog(Buffer.concat(es.map(encodeOpLogEntry)))).to.deep.equal(es)
  })

  it('stops at a cut entry, a bad checksum, a spoiled magic and a number that does not rise', () => {
    const a = encodeOpLogEntry(entry(3, 'create', '/a'))
    const b = encodeOpLogEntry(entry(4, 'create', '/b'))
    expect(parseOpLog(Buffer.concat([a, b.subarray(0, b.length - 1)])).map(e => e.seq)).to.deep.equal([3])
    const bad = Buffer.from(b)
    bad[bad.length - 1] ^= 1
    expect(parseOpLog(Buffer.concat([a, bad])).map(e => e.seq)).to.deep.equal([3])
    const spoiled = Buffer.from(b)
    spoiled.fill(0, 0, 4) // what the binding does to the entry of a create that failed
    expect(parseOpLog(Buffer.concat([a, spoiled])).map(e => e.seq)).to.deep.equal([3])
    // restarted at offset 0: older entries (lower numbers) behind the new ones end the scan
    expect(parseOpLog(Buffer.concat([encodeOpLogEntry(entry(9, 'unlink', '/n')), a, b])).map(e => e.seq)).to.deep.equal([9])
  })

  it('recovery journals the entries beyond the mark in order, then empties the log and numbers on', async () => {
    fs.writeFileSync(path.join(root, 'b'), 'x')
    fs.writeFileSync(file, Buffer.concat([entry(4, 'create', '/a'), entry(5, 'create', '/b'), entry(6, 'unlink', '/a')].map(encodeOpLogEntry)))
    const got: OpLogEntry[] = []
    const res = await recoverOpLog(file, root, {journaled: () => 4, record: async e => { got.push(e) }})
    try {
      expect(got.map(e => [e.seq, e.op, e.path])).to.deep.equal([[5, 'create', '/b'], [6, 'unlink', '/a']])
      expect(res).to.include({nextSeq: 7, recovered: 2, skipped: 0})
      expect(fs.statSync(file).size).to.equal(0)
    } finally {
      fs.closeSync(res.fd)
    }
  })

  it('recovery skips a last entry whose operation did not happen (the crash came between the entry and the disk)', async () => {
    fs.writeFileSync(path.join(root, 'made'), '')
    fs.writeFileSync(path.join(root, 'kept'), 'still here')
    const log = (es: OpLogEntry[]) => fs.writeFileSync(file, Buffer.concat(es.map(encodeOpLogEntry)))
    const recover = async () => {
      const got: string[] = []
      const res = await recoverOpLog(file, root, {journaled: () => -1, record: async e => { got.push(`${e.op} ${e.path}`) }})
      fs.closeSync(res.fd)
      return {got, res}
    }

    log([entry(0, 'create', '/made'), entry(1, 'create', '/never')])
    let r = await recover()
    expect(r.got).to.deep.equal(['create /made'])
    expect(r.res).to.include({skipped: 1, nextSeq: 2})

    log([entry(0, 'create', '/made'), entry(1, 'unlink', '/kept')])
    r = await recover()
    expect(r.got).to.deep.equal(['create /made'])

    // a file that was there before the entry (EEXIST) was not made by it
    log([entry(0, 'create', '/kept', Date.now() + 60_000)])
    r = await recover()
    expect(r.got).to.deep.equal([])
  })

  it('starts numbering after the journal mark with an empty or missing log', async () => {
    const res = await recoverOpLog(file, root, {journaled: () => 41, record: async () => { throw new Error('nothing to record') }})
    fs.closeSync(res.fd)
    expect(res).to.include({nextSeq: 42, recovered: 0})
  })

  it('readers refuse a volume whose log is ahead of its journal, unless a mount holds it', () => {
    fs.writeFileSync(file, Buffer.concat([entry(2, 'create', '/a'), entry(3, 'unlink', '/a')].map(encodeOpLogEntry)))
    expect(pendingOpLog(file, 2).map(e => e.seq)).to.deep.equal([3])
    expect(() => checkOpLog(file, 2, false)).to.throw(/1 operation\(s\) made before a crash.*unlink \/a/)
    expect(() => checkOpLog(file, 2, true)).not.to.throw()
    expect(() => checkOpLog(file, 3, false)).not.to.throw()
    expect(() => checkOpLog(path.join(dir, 'none'), -1, false)).not.to.throw()
  })

  it('the journal keeps the mark with the records, in one transaction', async () => {
    const journal = Journal.open(path.join(dir, 'journal.db'), 'vol-1')
    try {
      const row = () => ({hash: randomBytes(32), salt: randomBytes(32), record: Buffer.from('{}'), op: 'create', path: '/a', at: Date.now()})
      expect(journal.opLogJournaled()).to.equal(-1)
      journal.append([row()])
      expect(journal.opLogJournaled()).to.equal(-1)
      journal.append([row(), row()], [], 17)
      expect(journal.opLogJournaled()).to.equal(17)
      journal.append([row()], [], 18)
      expect(journal.opLogJournaled()).to.equal(18)
      // a batch that fails leaves the mark where it was
      expect(() => journal.append([row(), {...row(), hash: {} as unknown as Buffer}], [], 19)).to.throw()
      expect(journal.opLogJournaled()).to.equal(18)
    } finally {
      await journal.close()
    }
  })
})
