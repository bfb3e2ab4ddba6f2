// Where repair finds bytes: the history store first, then a peer (here an
// in-memory Volume standing in for the remote one); nothing is used unless
// it hashes to the recorded sha256, and a peer's good bytes are kept in the
// store.
import {expect} from 'chai'
import {createHash} from 'node:crypto'
import fs from 'node:fs'
import {join} from 'node:path'
import {HistoryStore} from '../../../src/history/store.js'
import {NoSourceError, Sources} from '../../../src/repair/sources.js'
import type {Volume} from '../../../src/volume/types.js'
import {makeTempDir, removeTree} from '../../helpers/tmp.js'

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex')
const caller = {uid: 0, gid: 0, pid: 1}

/** The part of the Volume API repair reads a peer through, over a map of path -> bytes. */
function fakePeer(files: Record<string, Buffer>, xattrs: Record<string, Buffer> = {}): Volume {
  const open = new Map<number, string>()
  let next = 1
  const enoent = (p: string) => Object.assign(new Error(`no such file or directory: ${p}`), {code: 'ENOENT'})
  const peer: Partial<Volume> = {
    async open(p) {
      if (!files[p]) throw enoent(p)
      open.set(next, p)
      return next++
    },
    async read(_p, fh, buf, len, pos) {
      const data = files[open.get(fh)!]
      return data.copy(buf, 0, pos, Math.min(data.length, pos + len))
    },
    async release(_p, fh) {
      open.delete(fh)
    },
    async getxattr(p, name) {
      const v = xattrs[`${p}#${name}`]
      if (!v) throw Object.assign(new Error('no such attribute'), {code: 'ENODATA'})
      return v
    },
  }
  return peer as Volume
}

describe('repair sources', () => {
  let dir: string
  let store: HistoryStore
  let n = 0
  const out = () => fs.openSync(join(dir, `out-${n++}`), 'wx+')
  const bytesOf = (fd: number) => {
    const size = fs.fstatSync(fd).size
    const b = Buffer.alloc(size)
    fs.readSync(fd, b, 0, size, 0)
    return b
  }

  beforeEach(async () => {
    dir = await makeTempDir('repair-sources')
    store = new HistoryStore(join(dir, 'history'), {create: true})
  })
  afterEach(async () => removeTree(dir))

  it('takes a version from the history store first, and checks it', async () => {
    const data = Buffer.alloc(700 * 1024, 'h') // several chunks
    await store.put(data)
    const fd = out()
    const got = await new Sources(store, {label: 'p:1', volume: fakePeer({'/f': Buffer.from('other')})}, caller).content('/f', sha(data), fd)
    expect(got).to.deep.equal({source: 'history', bytes: data.length})
    expect(bytesOf(fd).equals(data)).to.equal(true)
  })

  it('passes over a damaged or incomplete stored version, and says so', async () => {
    const data = Buffer.alloc(600 * 1024, 'd')
    await store.put(data)
    const m = store.manifest(sha(data))
    fs.writeFileSync(store.chunkPath(m.chunks[1]), Buffer.alloc(256 * 1024, 'X'))
    const fd = out()
    const got = await new Sources(store, {label: 'p:1', volume: fakePeer({'/f': data})}, caller).content('/f', sha(data), fd)
    expect(got.source).to.equal('peer')
    expect(bytesOf(fd).equals(data)).to.equal(true)

    fs.rmSync(store.chunkPath(m.chunks[2]))
    const none = await new Sources(store, undefined, caller).content('/f', sha(data), out()).catch(e => e)
    expect(none.message).to.match(/the history store's copy is damaged \(chunk 2 \([0-9a-f]{16}…\) is missing from the history store\)/)
    fs.rmSync(store.chunkPath(m.chunks[1]))
    fs.writeFileSync(store.chunkPath(m.chunks[2]), Buffer.alloc(600 * 1024 - 512 * 1024, 'd'))
    fs.writeFileSync(store.chunkPath(m.chunks[1]), Buffer.alloc(256 * 1024, 'Y'))
    const altered = await new Sources(store, undefined, caller).content('/f', sha(data), out()).catch(e => e)
    expect(altered.message).to.match(/does not reassemble to its digest/)
  })

  it('falls back to the peer, accepts its bytes only if they hash to the record, and keeps them in the store', async () => {
    const data = Buffer.alloc(3 * 1024 * 1024 + 5, 'p') // more than one read from the peer
    const fd = out()
    const s = new Sources(store, {label: 'p:1', volume: fakePeer({'/f': data})}, caller)
    expect(await s.content('/f', sha(data), fd)).to.deep.equal({source: 'peer', bytes: data.length})
    expect(bytesOf(fd).equals(data)).to.equal(true)
    expect(store.has(sha(data))).to.equal(true)

    const wrong = out()
    const bad = new Sources(undefined, {label: 'p:2', volume: fakePeer({'/f': Buffer.from('tampered')})}, caller)
    const error = await bad.content('/f', sha('the recorded bytes'), wrong).catch(e => e)
    expect(error).to.be.instanceOf(NoSourceError)
    expect(error.message).to.match(/the volume keeps no history; peer p:2 has other bytes there \(sha256 [0-9a-f]{16}…, 8 bytes\): not used/)
    expect(fs.fstatSync(wrong).size).to.equal(0) // nothing of it left in the file
  })

  it('says what each source lacked when none has the bytes', async () => {
    const none = await new Sources(store, undefined, caller).content('/f', sha('x'), out()).catch(e => e)
    expect(none.message).to.match(/not in the history store; no peer given \(--from\)/)
    const gone = await new Sources(store, {label: 'p:3', volume: fakePeer({})}, caller).content('/f', sha('x'), out()).catch(e => e)
    expect(gone.message).to.match(/peer p:3 cannot open \/f: no such file/)
    expect(await new Sources(undefined, undefined, caller).content('/empty', sha(''), out())).to.deep.equal({bytes: 0}) // empty needs no source
  })

  it('finds an xattr value on disk, in the store or on the peer, by its sha256', async () => {
    const value = Buffer.from('the recorded value')
    const file = join(dir, 'with-xattr')
    fs.writeFileSync(file, '')
    const peer = fakePeer({}, {'/x#user.k': value, '/y#user.k': Buffer.from('forged')})
    const s = new Sources(store, {label: 'p:1', volume: peer}, caller)
    expect(await s.xattr('/x', 'user.k', sha(value), [file])).to.deep.include({source: 'peer'})
    await store.put(value)
    expect(await s.xattr('/x', 'user.k', sha(value), [])).to.deep.include({source: 'history'})
    const missing = await new Sources(undefined, {label: 'p:1', volume: peer}, caller).xattr('/y', 'user.k', sha(value), []).catch(e => e)
    expect(missing.message).to.match(/peer p:1 has another value/)
  })
  it('finds a version to heal on disk, else in the peer\'s history view at the epoch, else its current file; never other bytes', async () => {
    const v1 = Buffer.from('the version of epoch 7')
    const disk = join(dir, 'on-disk')
    fs.writeFileSync(disk, v1)
    const other = join(dir, 'other')
    fs.writeFileSync(other, 'other bytes')
    const noPeer = new Sources(store, undefined, caller)
    let fd = out()
    expect(await noPeer.version('/a', 7, sha(v1), fd, [join(dir, 'absent'), other, disk])).to.deep.equal({source: 'disk', bytes: v1.length})
    expect(bytesOf(fd)).to.deep.equal(v1)

    const peer = new Sources(store, {label: 'p:1', volume: fakePeer({'/.paciofs-history/7/a': v1, '/a': Buffer.from('now')})}, caller)
    fd = out()
    expect(await peer.version('/a', 7, sha(v1), fd, [other])).to.deep.equal({source: 'peer', bytes: v1.length})
    expect(bytesOf(fd)).to.deep.equal(v1)

    const current = new Sources(store, {label: 'p:1', volume: fakePeer({'/a': v1})}, caller)
    fd = out()
    expect((await current.version('/a', 7, sha(v1), fd, [])).source).to.equal('peer')
    expect(bytesOf(fd)).to.deep.equal(v1)

    const liar = new Sources(store, {label: 'p:1', volume: fakePeer({'/.paciofs-history/7/a': Buffer.from('forged'), '/a': Buffer.from('now')})}, caller)
    fd = out()
    const error = await liar.version('/a', 7, sha(v1), fd, [other]).catch(e => e)
    expect(error).to.be.instanceOf(NoSourceError)
    expect(error.message).to.match(/no file on disk has these bytes; peer p:1 has other bytes at \/\.paciofs-history\/7\/a .*; peer p:1 has other bytes at \/a/)
    expect(fs.fstatSync(fd).size).to.equal(0)
  })
})
