// Creates and unlinks a volume logs itself (OpLogWriter, LocalVolume.useOpLog: a
// served volume): entries before the disk changes, answered before the record is
// journaled, records sharing transactions, and the member named after a crash.
import {expect} from 'chai'
import fs, {constants as C} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {decodeCanonical} from '../../../src/crypto/canonical.js'
import {actingAs} from '../../../src/volume/acting.js'
import {Journal} from '../../../src/volume/journal.js'
import {LocalVolume} from '../../../src/volume/local-volume.js'
import {OpLogWriter, encodeOpLogEntry, opLogRecord, parseOpLog, pendingOpLog, recoverOpLog, type OpLogEntry} from '../../../src/volume/oplog.js'
import {Recorder} from '../../../src/volume/recorder.js'
import type {FsRecord} from '../../../src/volume/types.js'
import {InstantBroadcast} from '../../fakes/instant-broadcast.js'

const who = {uid: 65534, gid: 65534, pid: 7}
const entry = (p: string): Omit<OpLogEntry, 'seq'> => ({at: Date.now(), op: 'unlink', path: p, who, mode: 0, uid: 0, gid: 0, flags: 0})

describe('op log written by the volume (served volumes)', () => {
  let dir: string
  let file: string
  let journal: Journal
  let bc: InstantBroadcast
  let recorder: Recorder
  let vol: LocalVolume
  let fd: number

  const records = (): FsRecord[] => [...journal.iterate()].map(r => decodeCanonical(r.record) as unknown as FsRecord)

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pacio-oplogw-'))
    fs.mkdirSync(path.join(dir, '.paciofs'))
    file = path.join(dir, '.paciofs', 'oplog')
    fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600)
    journal = Journal.open(path.join(dir, '.paciofs', 'journal.db'), 'vol-1')
    bc = new InstantBroadcast()
    recorder = new Recorder(journal, bc, bc.pid)
    vol = new LocalVolume(dir, recorder, {digestIntervalMs: 0, opLog: {fd, nextSeq: 5}})
  })

  afterEach(async () => {
    await vol.close()
    journal.close()
    fs.closeSync(fd)
    fs.rmSync(dir, {recursive: true, force: true})
  })

  it('the writer: entries in order, a failed one spoilt and overwritten, and a restart at offset 0 once journaled', () => {
    const w = new OpLogWriter(fd, 3)
    expect(w.log(entry('/a'))).to.equal(3)
    w.made()
    expect(w.log(entry('/b'))).to.equal(4)
    w.failed()
    expect(parseOpLog(fs.readFileSync(file)).map(e => e.path), 'the failed entry is not read back').to.deep.equal(['/a'])
    expect(w.log({...entry('/c'), member: 'm1'})).to.equal(4)
    w.made()
    expect(parseOpLog(fs.readFileSync(file)).map(e => [e.seq, e.path, e.member])).to.deep.equal([[3, '/a', undefined], [4, '/c', 'm1']])
    w.journaled(3) // not the last: the log goes on
    w.log(entry('/d'))
    w.made()
    expect(parseOpLog(fs.readFileSync(file)).map(e => e.seq)).to.deep.equal([3, 4, 5])
    w.journaled(5)
    w.log(entry('/e'))
    w.made()
    expect(parseOpLog(fs.readFileSync(file)).map(e => [e.seq, e.path]), 'started again at 0: the older entries behind end the scan').to.deep.equal([[6, '/e']])
  })

  it('a binding\'s entry (no member) and a member\'s entry both read back', () => {
    const base = {...entry('/x'), seq: 1}
    expect(parseOpLog(Buffer.concat([encodeOpLogEntry(base), encodeOpLogEntry({...base, seq: 2, member: 'ab'.repeat(32)})])).map(e => e.member))
      .to.deep.equal([undefined, 'ab'.repeat(32)])
  })

  it('a create and an unlink are in the log when answered, their records journaled behind, with the mark', async () => {
    expect(vol.useOpLog(e => { throw e })).to.equal(true)
    const fh = await actingAs('member-a', () => vol.create('/f', 0o640, C.O_WRONLY, who))
    await actingAs('member-a', () => vol.unlink('/f', who))
    // answered: the disk changed and both entries are in the log, while the journal has no record yet
    expect(fs.existsSync(path.join(dir, 'f'))).to.equal(false)
    expect(records()).to.deep.equal([])
    expect(pendingOpLog(file, journal.opLogJournaled()).map(e => [e.seq, e.op, e.path, e.member])).to.deep.equal([[5, 'create', '/f', 'member-a'], [6, 'unlink', '/f', 'member-a']])
    await vol.release('/f', fh)
    await recorder.committed()
    const recs = records()
    expect(recs.map(r => r.op)).to.deep.equal(['create', 'unlink'])
    expect(recs[0]).to.include({path: '/f', type: 'file', uid: 65534, gid: 65534, writing: true, mode: C.S_IFREG | 0o640})
    expect(recs.every(r => r.who.member === 'member-a')).to.equal(true)
    expect(journal.opLogJournaled()).to.equal(6)
  })

  it('after a kill -9 before the records were journaled: the journal and a recovery of the log make every record once, naming the same member', async () => {
    vol.useOpLog(e => { throw e })
    await actingAs('member-b', async () => {
      const fh = await vol.create('/g', 0o600, C.O_WRONLY, who)
      await vol.release('/g', fh) // its record is journaled at once, and the create's with it
      await vol.create('/h', 0o600, C.O_WRONLY, who)
      await vol.unlink('/g', who)
    })
    // the kill: what the journal and the log hold at this instant (all read in one go, before any timer)
    const journaled = records()
    const mark = journal.opLogJournaled()
    const copy = path.join(dir, 'oplog.copy')
    fs.copyFileSync(file, copy)

    const journal2 = Journal.open(path.join(dir, 'journal2.db'), 'vol-1')
    const rec2 = new Recorder(journal2, new InstantBroadcast(), 'the-server-itself')
    try {
      const res = await recoverOpLog(copy, dir, {journaled: () => mark, record: async e => {
        const record = () => rec2.record(opLogRecord(e.op, e.path, e), e.who, undefined, {at: e.at, opLogSeq: e.seq})
        await (e.member ? actingAs(e.member, record) : record())
      }})
      fs.closeSync(res.fd)
      await rec2.committed()
      const recovered = [...journal2.iterate()].map(r => decodeCanonical(r.record) as unknown as FsRecord)
      expect([...journaled, ...recovered].map(r => `${r.op} ${r.path} ${r.who.member}`))
        .to.deep.equal(['create /g member-b', 'write /g member-b', 'create /h member-b', 'unlink /g member-b'])
    } finally {
      journal2.close()
    }
  })

  it('a create that fails (the name exists) leaves no entry behind, and the next one is read back', async () => {
    vol.useOpLog(e => { throw e })
    fs.writeFileSync(path.join(dir, 'taken'), 'x')
    await vol.create('/taken', 0o644, C.O_WRONLY, who).then(() => expect.fail('created over an existing file'), (e: NodeJS.ErrnoException) => expect(e.code).to.equal('EEXIST'))
    await vol.unlink('/none', who).then(() => expect.fail('unlinked nothing'), (e: NodeJS.ErrnoException) => expect(e.code).to.equal('ENOENT'))
    const fh = await vol.create('/new', 0o644, C.O_WRONLY, who)
    expect(parseOpLog(fs.readFileSync(file)).map(e => [e.seq, e.op, e.path])).to.deep.equal([[5, 'create', '/new']])
    await vol.release('/new', fh)
  })

  it('a read-only create is made as before (intent, record before the answer), not logged', async () => {
    vol.useOpLog(e => { throw e })
    const fh = await vol.create('/ro', 0o644, C.O_RDONLY, who)
    expect(records().map(r => r.op)).to.deep.equal(['create'])
    expect(parseOpLog(fs.readFileSync(file))).to.deep.equal([])
    await vol.release('/ro', fh)
  })
})
