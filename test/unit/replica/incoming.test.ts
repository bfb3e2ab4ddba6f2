// What a replica does with a fetched version's bytes (src/replica/incoming.ts): chunks and a staging
// file written from the same bytes, staged only when they hash to the digest, installed by rename
// or by copy, with the target's owner, mode, xattrs and links kept. Real files in a temp dir.
import {expect} from 'chai'
import {createHash, randomBytes} from 'node:crypto'
import fs from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {proveVersion} from '../../../src/history/reader.js'
import {stepNow, type ChainState} from '../../../src/history/sha256.js'
import {CHUNK_SIZE, HistoryStore} from '../../../src/history/store.js'
import {Incoming} from '../../../src/replica/incoming.js'
import {sys} from '../../../src/volume/sys.js'

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** The SHA-256 states after each chunk of `data` but the last, as a sender's marks (computed with node:crypto's chunking, not the store's). */
function marksOf(data: Buffer): Buffer {
  const out: Buffer[] = []
  let state: ChainState = null
  for (let at = 0; at + CHUNK_SIZE < data.length; at += CHUNK_SIZE) out.push(state = stepNow(data.subarray(at, at + CHUNK_SIZE), state, at, false))
  return Buffer.concat(out)
}

/** Pushes `data` in pieces of these sizes (cycled), as a peer's messages; returns the digest the sink computed. */
async function send(incoming: Incoming, digest: string, data: Buffer, pieces: number[], marks?: Buffer, size = data.length) {
  const sink = incoming.receive(digest, size)
  const used = marks ? sink.useMarks(marks) : false
  for (let off = 0, i = 0; off < data.length; i++) {
    const n = Math.min(pieces[i % pieces.length], data.length - off)
    sink.push(Buffer.from(data.subarray(off, off + n))) // a fresh buffer per message, as gRPC gives them
    await sink.room()
    off += n
  }

  return {sink, used, got: await sink.finish()}
}

describe('replica Incoming (fetched versions)', () => {
  let dir: string
  let history: HistoryStore
  let incoming: Incoming

  beforeEach(() => {
    dir = fs.mkdtempSync(join(tmpdir(), 'pacio-incoming-'))
    history = new HistoryStore(join(dir, 'history'), {create: true})
    incoming = new Incoming(join(dir, 'incoming'), history)
    incoming.reset()
  })

  afterEach(() => fs.rmSync(dir, {recursive: true, force: true}))

  it('stores chunks and a manifest that check out, whatever the message sizes, and stages the version', async () => {
    const data = randomBytes(3 * CHUNK_SIZE + 12_345)
    const digest = sha(data)
    const {sink, got} = await send(incoming, digest, data, [100_000, CHUNK_SIZE, 7, 3 * CHUNK_SIZE])
    expect(got).to.equal(digest)
    await sink.commit()
    expect(history.has(digest)).to.equal(true)
    expect(history.check(digest)).to.equal(undefined)
    expect(history.manifest(digest).chunks).to.deep.equal([0, 1, 2, 3].map(i => sha(data.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE))))
    expect(incoming.isStaged(digest)).to.equal(true)
  })

  it('keeps the hash states between chunks as the version marks, which the reader checks step by step', async () => {
    for (const size of [4 * CHUNK_SIZE, 2 * CHUNK_SIZE + 1]) { // ending with a whole chunk, and with a short one
      const data = randomBytes(size)
      const digest = sha(data)
      const {sink, got} = await send(incoming, digest, data, [CHUNK_SIZE + 1000, 333])
      expect(got).to.equal(digest)
      await sink.commit()
      const m = history.manifest(digest)
      const marks = await history.marks(m)
      expect(marks?.length).to.equal((m.chunks.length - 1) * 32)
      const proven = await proveVersion(history, digest)
      expect(proven.marks?.equals(marks!)).to.equal(true) // proven by steps, not by the fallback
    }
  })

  it('a version of no bytes, and of exactly one chunk, hash to their digests (no marks: one chunk or none)', async () => {
    for (const data of [Buffer.alloc(0), randomBytes(CHUNK_SIZE)]) {
      const digest = sha(data)
      const {sink, got} = await send(incoming, digest, data, [CHUNK_SIZE])
      expect(got).to.equal(digest)
      await sink.commit()
      expect(history.check(digest)).to.equal(undefined)
      expect(await history.marks(history.manifest(digest))).to.equal(undefined)
    }
  })

  it('bytes of the right size that do not hash to the digest: no manifest, nothing staged, the staging file gone', async () => {
    const good = randomBytes(2 * CHUNK_SIZE)
    const bad = Buffer.from(good)
    bad[CHUNK_SIZE + 5] ^= 1
    const {sink, got} = await send(incoming, sha(good), bad, [CHUNK_SIZE])
    expect(got).to.not.equal(sha(good))
    await sink.abort()
    expect(history.has(sha(good))).to.equal(false)
    expect(incoming.isStaged(sha(good))).to.equal(false)
    expect(fs.readdirSync(incoming.dir)).to.deep.equal([])
    expect(incoming.install(join(dir, 'file'), sha(good))).to.equal(false)
  })

  it('installs into a new file by rename, and into a file with one link in its place keeping owner, mode and xattrs', async () => {
    const data = randomBytes(CHUNK_SIZE + 1)
    const digest = sha(data)
    await (await send(incoming, digest, data, [65_536])).sink.commit()
    incoming.want(digest)
    const fresh = join(dir, 'fresh')
    expect(incoming.install(fresh, digest)).to.equal(true)
    expect(fs.readFileSync(fresh).equals(data)).to.equal(true)
    expect(fs.readdirSync(incoming.dir)).to.deep.equal([]) // renamed, not copied
    incoming.release(digest)

    const old = join(dir, 'old')
    fs.writeFileSync(old, 'previous version')
    fs.chmodSync(old, 0o640)
    fs.chownSync(old, 1234, 5678)
    sys.lsetxattr(old, 'user.note', Buffer.from('kept'), 0)
    await (await send(incoming, digest, data, [CHUNK_SIZE])).sink.commit()
    incoming.want(digest)
    expect(incoming.install(old, digest)).to.equal(true)
    const st = fs.statSync(old)
    expect(fs.readFileSync(old).equals(data)).to.equal(true)
    expect([st.mode & 0o7777, st.uid, st.gid]).to.deep.equal([0o640, 1234, 5678])
    expect(sys.lgetxattr(old, 'user.note').toString()).to.equal('kept')
  })

  it('copies in place (same inode) into a file with other links, and while later records still need the version', async () => {
    const data = randomBytes(2 * CHUNK_SIZE)
    const digest = sha(data)
    await (await send(incoming, digest, data, [CHUNK_SIZE])).sink.commit()
    const a = join(dir, 'a')
    fs.writeFileSync(a, 'old')
    fs.chmodSync(a, 0o604)
    fs.linkSync(a, join(dir, 'b'))
    const ino = fs.statSync(a).ino
    incoming.want(digest)
    incoming.want(digest)
    expect(incoming.install(a, digest)).to.equal(true)
    expect(fs.statSync(a).ino).to.equal(ino)
    expect(fs.statSync(a).mode & 0o7777).to.equal(0o604)
    expect(fs.readFileSync(join(dir, 'b')).equals(data)).to.equal(true)
    incoming.release(digest)
    expect(incoming.isStaged(digest)).to.equal(true) // one record still wants it
    const c = join(dir, 'c')
    expect(incoming.install(c, digest)).to.equal(true)
    expect(fs.readFileSync(c).equals(data)).to.equal(true)
    incoming.release(digest)
    expect(incoming.isStaged(digest)).to.equal(false)
    expect(fs.readdirSync(incoming.dir)).to.deep.equal([])
  })

  it('with the sender\'s marks: each step is checked against them, the version staged, the marks kept', async () => {
    for (const size of [5 * CHUNK_SIZE, 3 * CHUNK_SIZE + 77]) {
      const data = randomBytes(size)
      const digest = sha(data)
      const marks = marksOf(data)
      expect(createHash('sha256').update(data).digest().equals(stepNow(data.subarray(marks.length / 32 * CHUNK_SIZE), marks.subarray(-32), marks.length / 32 * CHUNK_SIZE, true))).to.equal(true)
      const {sink, used, got} = await send(incoming, digest, data, [CHUNK_SIZE + 5000, 100], marks)
      expect([used, got, sink.checkedWithMarks]).to.deep.equal([true, digest, true])
      await sink.commit()
      expect(history.check(digest)).to.equal(undefined)
      expect((await history.marks(history.manifest(digest)))?.equals(marks)).to.equal(true)
      expect(fs.readFileSync(join(incoming.dir, fs.readdirSync(incoming.dir).find(n => n.startsWith(digest))!)).equals(data)).to.equal(true)
    }
  })

  it('wrong marks with the right bytes: the sequential pass decides, the version is staged with its own marks', async () => {
    const data = randomBytes(4 * CHUNK_SIZE + 9)
    const digest = sha(data)
    const wrong = marksOf(data)
    wrong[32 + 3] ^= 0x40 // the state after chunk 1
    const {sink, used, got} = await send(incoming, digest, data, [CHUNK_SIZE], wrong)
    expect([used, got, sink.checkedWithMarks]).to.deep.equal([true, digest, false])
    await sink.commit()
    const marks = await history.marks(history.manifest(digest))
    expect(marks?.equals(marksOf(data))).to.equal(true)
    expect((await proveVersion(history, digest)).marks?.equals(marks!)).to.equal(true)
  })

  it('an altered chunk is refused, with the true marks and with marks made from the altered bytes', async () => {
    const good = randomBytes(3 * CHUNK_SIZE)
    const digest = sha(good)
    for (const which of [0, 1, 2]) {
      const bad = Buffer.from(good)
      bad[which * CHUNK_SIZE + 1234] ^= 1
      for (const marks of [marksOf(good), marksOf(bad)]) {
        const {sink, used, got} = await send(incoming, digest, bad, [CHUNK_SIZE * 2, 999], marks)
        expect(used).to.equal(true)
        expect(got).to.equal(sha(bad)) // what the bytes hash to, never the digest asked for
        expect(sink.checkedWithMarks).to.equal(false)
        await sink.abort()
        expect(history.has(digest)).to.equal(false)
        expect(incoming.isStaged(digest)).to.equal(false)
      }
    }

    expect(fs.readdirSync(incoming.dir)).to.deep.equal([])
  })

  it('marks of the wrong length are not used; a sender that stops early with marks is caught by the digest', async () => {
    const data = randomBytes(3 * CHUNK_SIZE)
    const digest = sha(data)
    for (const marks of [Buffer.alloc(0), marksOf(data).subarray(32), Buffer.concat([marksOf(data), Buffer.alloc(32)])]) {
      const {sink, used, got} = await send(incoming, digest, data, [CHUNK_SIZE], marks)
      expect([used, got]).to.deep.equal([false, digest]) // hashed as it arrived
      await sink.abort()
    }

    const short = await send(incoming, digest, data.subarray(0, 2 * CHUNK_SIZE - 100), [CHUNK_SIZE], marksOf(data), data.length)
    expect(short.used).to.equal(true)
    expect(short.got).to.equal(sha(data.subarray(0, 2 * CHUNK_SIZE - 100)))
    expect(short.sink.received).to.equal(2 * CHUNK_SIZE - 100)
    await short.sink.abort()
  })

  it('does not install over something that is not a regular file', async () => {
    const data = randomBytes(100)
    const digest = sha(data)
    await (await send(incoming, digest, data, [100])).sink.commit()
    fs.symlinkSync('/etc/passwd', join(dir, 'link'))
    expect(incoming.install(join(dir, 'link'), digest)).to.equal(false)
    expect(fs.readlinkSync(join(dir, 'link'))).to.equal('/etc/passwd')
  })
})
