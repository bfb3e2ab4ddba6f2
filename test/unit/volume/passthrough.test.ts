/**
 * LocalVolume with the patched fuse-native's passthrough (no mount): the
 * binding's tryWrite does what a FUSE thread does with a write request, so
 * each test can say which writes the binding served and which came to JS.
 */
import {expect} from 'chai'
import {createHash, randomBytes} from 'node:crypto'
import fs, {constants as C} from 'node:fs'
import {createRequire} from 'node:module'
import os from 'node:os'
import path from 'node:path'
import {decodeCanonical} from '../../../src/crypto/canonical.js'
import {InodeContent} from '../../../src/volume/content.js'
import {Journal} from '../../../src/volume/journal.js'
import {LocalVolume} from '../../../src/volume/local-volume.js'
import type {Passthrough} from '../../../src/volume/passthrough.js'
import {Recorder} from '../../../src/volume/recorder.js'
import type {FsRecord} from '../../../src/volume/types.js'
import {InstantBroadcast} from '../../fakes/instant-broadcast.js'

type Binding = Passthrough & {tryWrite(fh: number, buf: Buffer, len: number, pos: number): number | null}
const pt = (createRequire(import.meta.url)('fuse-native') as {passthrough: Binding}).passthrough
const root = {uid: 0, gid: 0, pid: 1}
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

describe('LocalVolume with the binding\'s passthrough (no FUSE)', () => {
  let dir: string
  let journal: Journal
  let vol: LocalVolume

  const records = (): FsRecord[] => [...journal.iterate()].map(r => decodeCanonical(r.record) as unknown as FsRecord)
  const ops = () => records().map(r => r.op)
  const file = (name: string) => fs.readFileSync(path.join(dir, name))
  /** A write as a FUSE thread makes it: served by the binding (bytes) or handed to JS (null). */
  const fast = (fh: number, data: Buffer, pos: number) => pt.tryWrite(fh, data, data.length, pos)

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pacio-pt-'))
    fs.mkdirSync(path.join(dir, '.paciofs'))
    journal = Journal.open(path.join(dir, '.paciofs', 'journal.db'), 'vol-1')
    const bc = new InstantBroadcast()
    vol = new LocalVolume(dir, new Recorder(journal, bc, bc.pid), {digestIntervalMs: 0})
    vol.usePassthrough(pt)
  })

  afterEach(async () => {
    await vol.close()
    journal.close()
    fs.rmSync(dir, {recursive: true, force: true})
  })

  it('serves the writes of a new file and records the digest kept by the binding', async () => {
    const fh = await vol.create('/new', 0o644, C.O_WRONLY, root)
    const data = randomBytes(3 * 1024 * 1024 + 17) // more than one hasher chunk, not a multiple of it
    for (let pos = 0; pos < data.length; pos += 128 * 1024) {
      const part = data.subarray(pos, pos + 128 * 1024)
      expect(fast(fh, part, pos), `write at ${pos}`).to.equal(part.length)
    }

    expect(pt.state(fh)).to.include({size: data.length, digest: sha(data), fastWrites: 25})
    await vol.release('/new', fh)
    expect(pt.detach(fh), 'released handles are detached').to.equal(null)
    expect(ops()).to.deep.equal(['create', 'write'])
    expect(records()[1]).to.include({size: data.length, digest: sha(data)})
    expect(sha(file('new'))).to.equal(sha(data))
  })

  it('closes the gate with the digest at fsync; the next write goes to JS, is announced, and reopens it', async () => {
    const fh = await vol.create('/f', 0o644, C.O_RDWR, root)
    const a = randomBytes(200_000)
    const b = randomBytes(300_000)
    expect(fast(fh, a, 0)).to.equal(a.length)
    await vol.fsync('/f', fh, false)
    expect(fast(fh, b, a.length), 'clean after the fsync record: the binding must not write').to.equal(null)
    expect(await vol.write('/f', fh, b.subarray(0, 1000), 1000, a.length, root)).to.equal(1000)
    expect(fast(fh, b.subarray(1000), a.length + 1000)).to.equal(b.length - 1000)
    await vol.release('/f', fh)
    const all = Buffer.concat([a, b])
    expect(ops()).to.deep.equal(['create', 'write', 'write-begin', 'write'])
    expect(records()[1]).to.include({size: a.length, digest: sha(a)})
    expect(records()[3]).to.include({size: all.length, digest: sha(all)})
  })

  it('falls back to re-reading the file after writes out of order', async () => {
    const fh = await vol.create('/r', 0o644, C.O_WRONLY, root)
    expect(fast(fh, Buffer.from('bbbb'), 4)).to.equal(4)
    expect(fast(fh, Buffer.from('aaaa'), 0)).to.equal(4)
    expect(pt.state(fh).digest).to.equal(null)
    await vol.release('/r', fh)
    expect(records().at(-1)).to.include({op: 'write', size: 8, digest: sha(Buffer.from('aaaabbbb'))})
  })

  it('opens the gate of an existing file only after its first write is announced', async () => {
    fs.writeFileSync(path.join(dir, 'old'), 'old content')
    const fh = await vol.open('/old', C.O_WRONLY, root)
    expect(fast(fh, Buffer.from('NEW'), 0)).to.equal(null)
    await vol.write('/old', fh, Buffer.from('NEW'), 3, 0, root)
    expect(fast(fh, Buffer.from('!'), 3)).to.equal(1)
    await vol.release('/old', fh)
    expect(ops()).to.deep.equal(['write-begin', 'write'])
    expect(records()[1]).to.include({size: 11, digest: sha(Buffer.from('NEW!content'))})
  })

  it('O_TRUNC of an existing file: announced at open, then served with an incremental digest', async () => {
    fs.writeFileSync(path.join(dir, 't'), 'to be truncated')
    const fh = await vol.open('/t', C.O_WRONLY | C.O_TRUNC, root)
    const data = randomBytes(50_000)
    expect(fast(fh, data, 0)).to.equal(data.length)
    expect(pt.state(fh).digest).to.equal(sha(data))
    await vol.release('/t', fh)
    expect(ops()).to.deep.equal(['write-begin', 'write'])
    expect(records()[1]).to.include({size: data.length, digest: sha(data)})
  })

  it('a second writer closes the first one\'s gate; both writers\' bytes are in the digest', async () => {
    const one = await vol.create('/two', 0o644, C.O_WRONLY, root)
    expect(fast(one, Buffer.from('11'), 0)).to.equal(2)
    const two = await vol.open('/two', C.O_WRONLY, root)
    expect(fast(one, Buffer.from('xx'), 2), 'two writers: every write goes through JS').to.equal(null)
    expect(fast(two, Buffer.from('xx'), 2)).to.equal(null)
    await vol.write('/two', two, Buffer.from('22'), 2, 2, root)
    await vol.write('/two', one, Buffer.from('33'), 2, 4, root)
    await vol.release('/two', two)
    expect(fast(one, Buffer.from('44'), 6), 'one writer left, but the gate opens only at its next JS write').to.equal(null)
    await vol.write('/two', one, Buffer.from('44'), 2, 6, root)
    expect(fast(one, Buffer.from('55'), 8)).to.equal(2)
    await vol.release('/two', one)
    expect(records().at(-1)).to.include({op: 'write', size: 10, digest: sha(Buffer.from('1122334455'))})
  })

  it('ftruncate while the gate is open: the digest is taken again from the file', async () => {
    const fh = await vol.create('/ft', 0o644, C.O_RDWR, root)
    expect(fast(fh, Buffer.from('abcdef'), 0)).to.equal(6)
    await vol.ftruncate('/ft', fh, 3, root)
    expect(fast(fh, Buffer.from('XY'), 3)).to.equal(2)
    await vol.release('/ft', fh)
    expect(records().at(-1)).to.include({op: 'write', size: 5, digest: sha(Buffer.from('abcXY'))})
  })

  it('read-only handles are attached for reads and detached at release', async () => {
    fs.writeFileSync(path.join(dir, 'ro'), 'read me')
    const fh = await vol.open('/ro', C.O_RDONLY, root)
    expect(pt.state(fh)).to.include({size: 7, fastWrites: 0})
    expect(fast(fh, Buffer.from('no'), 0)).to.equal(null)
    await vol.release('/ro', fh)
    expect(() => pt.state(fh)).to.throw().with.property('code', 'EBADF')
    expect(ops()).to.deep.equal([])
  })
})

describe('InodeContent.settle with passthrough handles', () => {
  it('fails, and leaves the gate closed, if the binding wrote after the generation was read', () => {
    const f = path.join(os.tmpdir(), `pacio-settle-${process.pid}`)
    const fd = fs.openSync(f, 'w+')
    try {
      const c = new InodeContent('k')
      c.openWriter(true, {pt, fh: fd, fd, append: false})
      pt.gate(fd, true)
      const gen = c.gen
      expect(pt.tryWrite(fd, Buffer.from('late'), 4, 0)).to.equal(4)
      expect(c.settle(gen)).to.equal(false)
      expect(pt.tryWrite(fd, Buffer.from('x'), 1, 4), 'settle closed the gate anyway').to.equal(null)
      expect(c.settle(c.gen)).to.equal(true)
      expect(c.incremental(4)).to.deep.equal({size: 4, digest: sha(Buffer.from('late'))})
      c.dropNative(fd)
      expect(c.gen, 'a detached handle\'s writes stay counted').to.equal(1)
    } finally {
      pt.detach(fd)
      fs.closeSync(fd)
      fs.rmSync(f, {force: true})
    }
  })
})
