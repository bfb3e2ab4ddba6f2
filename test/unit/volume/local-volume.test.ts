import {expect} from 'chai'
import crypto, {createHash} from 'node:crypto'
import fs, {constants as C} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {decodeCanonical} from '../../../src/crypto/canonical.js'
import {Journal} from '../../../src/volume/journal.js'
import {LocalVolume} from '../../../src/volume/local-volume.js'
import {Recorder} from '../../../src/volume/recorder.js'
import type {FsRecord} from '../../../src/volume/types.js'
import {InstantBroadcast} from '../../fakes/instant-broadcast.js'

const root = {uid: 0, gid: 0, pid: 1}
const nobody = {uid: 65534, gid: 65534, pid: 2}
const sha = (b: string | Buffer) => createHash('sha256').update(b).digest('hex')

describe('LocalVolume (no FUSE)', () => {
  let dir: string
  let journal: Journal
  let bc: InstantBroadcast
  let vol: LocalVolume

  const records = (): FsRecord[] => [...journal.iterate()].map(r => decodeCanonical(r.record) as unknown as FsRecord)

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pacio-vol-'))
    fs.mkdirSync(path.join(dir, '.paciofs'))
    journal = Journal.open(path.join(dir, '.paciofs', 'journal.db'), 'vol-1')
    bc = new InstantBroadcast()
    vol = new LocalVolume(dir, new Recorder(journal, bc, bc.pid), {digestIntervalMs: 0})
  })

  afterEach(async () => {
    await vol.close()
    journal.close()
    fs.rmSync(dir, {recursive: true, force: true})
  })

  it('records a created file with its owner and, at release, its digest (incremental)', async () => {
    const fh = await vol.create('/a.txt', 0o640, C.O_WRONLY, nobody)
    await vol.write('/a.txt', fh, Buffer.from('hello '), 6, 0, nobody)
    await vol.write('/a.txt', fh, Buffer.from('world'), 5, 6, nobody)
    await vol.release('/a.txt', fh)
    await vol.sync()
    const st = fs.statSync(path.join(dir, 'a.txt'))
    expect(st.uid).to.equal(65534)
    expect(st.mode & 0o7777).to.equal(0o640)
    const recs = records()
    expect(recs.map(r => r.op)).to.deep.equal(['create', 'write'])
    expect(recs[0].writing, 'a create for writing announces the digest to come').to.equal(true)
    expect(recs[0]).to.include({path: '/a.txt', type: 'file', uid: 65534, gid: 65534})
    expect(recs[1]).to.include({size: 11, digest: sha('hello world')})
    expect(recs[1].who.uid).to.equal(65534)
    expect(bc.delivered).to.have.length(2)
    expect([...journal.iterate()].every(r => r.epoch !== null)).to.equal(true)
  })

  it('a sequential writer\'s large writes (hashed on the thread pool, several at once) and a short tail: the file and its digest exact, without reading the file again', async () => {
    const data = crypto.randomBytes(4 * 1024 * 1024 + 1000)
    const fh = await vol.create('/big', 0o644, C.O_WRONLY, root)
    const MiB = 1024 * 1024
    // two at a time, as a server's requests for one handle may be
    for (let at = 0; at < 4 * MiB; at += 2 * MiB) {
      await Promise.all([0, MiB].map(d => vol.write('/big', fh, data.subarray(at + d, at + d + MiB), MiB, at + d, root)))
    }

    expect(await vol.write('/big', fh, data.subarray(4 * MiB), 1000, 4 * MiB, root)).to.equal(1000) // while the pool may still hash
    await vol.fsync('/big', fh, false)
    expect(fs.readFileSync(path.join(dir, 'big')).equals(data)).to.equal(true)
    expect(records().at(-1)).to.include({op: 'write', size: data.length, digest: sha(data)})
    // the digest came from the bytes as they passed, not from reading the file again: changed behind
    // the volume's back after the writes, the file does not change the digest of the next release
    await vol.write('/big', fh, Buffer.alloc(MiB, 1), MiB, data.length, root)
    const fd = fs.openSync(path.join(dir, 'big'), 'r+')
    await new Promise(resolve => setTimeout(resolve, 200)) // the pool has read the write back
    fs.writeSync(fd, Buffer.from('behind'), 0, 6, 0)
    fs.closeSync(fd)
    await vol.release('/big', fh)
    await vol.sync()
    expect(records().at(-1)).to.include({op: 'write', size: data.length + MiB, digest: sha(Buffer.concat([data, Buffer.alloc(MiB, 1)]))})
  })

  it('readOffThread reads what read reads, on libuv\'s pool (not holding the event loop); 0 at the end, EBADF for no handle', async () => {
    const data = crypto.randomBytes(3 * 1024 * 1024 + 17)
    fs.writeFileSync(path.join(dir, 'r'), data)
    const fh = await vol.open('/r', C.O_RDONLY, root)
    const [a, b] = [Buffer.alloc(1024 * 1024), Buffer.alloc(1024 * 1024)]
    for (const pos of [0, 1024 * 1024 + 5, 3 * 1024 * 1024]) {
      const pending = vol.readOffThread('/r', fh, b, b.length, pos)
      expect(process.getActiveResourcesInfo(), 'a read request on the pool').to.include('FSReqCallback')
      const n = await pending
      expect(n).to.equal(await vol.read('/r', fh, a, a.length, pos))
      expect(b.subarray(0, n).equals(data.subarray(pos, pos + n))).to.equal(true)
    }

    expect(await vol.readOffThread('/r', fh, b, b.length, data.length)).to.equal(0)
    await vol.release('/r', fh)
    const err = await vol.readOffThread('/r', fh, b, 10, 0).then(() => undefined, (e: NodeJS.ErrnoException) => e)
    expect(err?.code).to.equal('EBADF')
  })

  it('re-reads the file for the digest after random writes', async () => {
    const fh = await vol.create('/r', 0o644, C.O_RDWR, root)
    await vol.write('/r', fh, Buffer.from('bbbb'), 4, 4, root)
    await vol.write('/r', fh, Buffer.from('aaaa'), 4, 0, root)
    await vol.release('/r', fh)
    expect(records().at(-1)).to.include({op: 'write', size: 8, digest: sha('aaaabbbb')})
  })

  it('salted hashes differ for identical records and match the journal preimage', async () => {
    await vol.mkdir('/d1', 0o755, root)
    await vol.rmdir('/d1', root)
    await vol.mkdir('/d1', 0o755, root)
    const rows = [...journal.iterate()]
    expect(rows[0].hash.equals(rows[2].hash)).to.equal(false)
    for (const r of rows) expect(Recorder.obfuscate(decodeCanonical(r.record) as unknown as FsRecord, r.salt).hash.equals(r.hash)).to.equal(true)
  })

  it('records rename, link, symlink, chmod, chown, xattrs and utimens with the state after', async () => {
    const fh = await vol.create('/f', 0o644, C.O_WRONLY, root)
    await vol.release('/f', fh)
    await vol.rename('/f', '/g', root)
    await vol.link('/g', '/h', root)
    await vol.symlink('g', '/s', root)
    await vol.chmod('/g', 0o600, root)
    await vol.chown('/g', 12, 34, root)
    await vol.setxattr('/g', 'user.k', Buffer.from('v'), 0, root)
    await vol.removexattr('/g', 'user.k', root)
    await vol.utimens('/g', 1_000_000_000_123_456_789n, 'omit', root)
    const st = fs.statSync(path.join(dir, 'g'), {bigint: true})
    expect(st.atimeNs).to.equal(1_000_000_000_123_456_789n)
    const ops = records().map(r => [r.op, r.path, r.to ?? r.target ?? r.value ?? r.mode ?? r.uid ?? r.atime])
    expect(ops).to.deep.equal([
      ['create', '/f', 0o100644],
      ['write', '/f', undefined], // closed without a write: the empty content is recorded
      ['rename', '/f', '/g'],
      ['link', '/g', '/h'],
      ['symlink', '/s', 'g'],
      ['chmod', '/g', 0o100600],
      ['chown', '/g', 0o100600],
      ['setxattr', '/g', sha('v')],
      ['removexattr', '/g', 0o100600],
      ['utimens', '/g', '1000000000123456789'],
    ])
  })

  it('hides and protects the state directory', async () => {
    expect(await vol.readdir('/')).to.not.include('.paciofs')
    for (const attempt of [() => vol.getattr('/.paciofs'), () => vol.open('/.paciofs/journal.db', C.O_RDONLY, root),
      () => vol.mkdir('/.paciofs', 0o755, root), () => vol.unlink('/.paciofs/journal.db', root)]) {
      let err: NodeJS.ErrnoException | undefined
      try {
        await attempt()
      } catch (error) {
        err = error as NodeJS.ErrnoException
      }

      expect(err?.code).to.be.oneOf(['ENOENT', 'EACCES'])
    }

    expect(fs.existsSync(path.join(dir, '.paciofs', 'journal.db'))).to.equal(true)
  })

  it('records truncate with the digest of what is left', async () => {
    const fh = await vol.create('/t', 0o644, C.O_WRONLY, root)
    await vol.write('/t', fh, Buffer.from('abcdef'), 6, 0, root)
    await vol.release('/t', fh)
    await vol.truncate('/t', 3, root)
    expect(records().at(-1)).to.include({op: 'truncate', size: 3, digest: sha('abc')})
  })

  it('a failed operation leaves no record', async () => {
    await vol.mkdir('/x', 0o755, root)
    const before = journal.count()
    let code: string | undefined
    try {
      await vol.mkdir('/x', 0o755, root)
    } catch (error) {
      code = (error as NodeJS.ErrnoException).code
    }

    expect(code).to.equal('EEXIST')
    expect(journal.count()).to.equal(before)
    expect(journal.intents(), 'no intent left by a done or a failed operation').to.deep.equal([])
  })
})
