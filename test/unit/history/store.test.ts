import {expect} from 'chai'
import {createHash, randomBytes} from 'node:crypto'
import fs from 'node:fs'
import {join} from 'node:path'
import {CHUNK_SIZE, EMPTY_DIGEST, HistoryError, HistoryStore, SYNCFS_MIN, dirtyBytes} from '../../../src/history/store.js'
import {pipeVersion} from '../../../src/history/reader.js'
import {step} from '../../../src/history/sha256.js'
import {catchUp} from '../../../src/history/recover.js'
import {makeTempDir, removeTree} from '../../helpers/tmp.js'

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

async function readAll(store: HistoryStore, digest: string): Promise<Buffer> {
  const m = store.manifest(digest)
  const out = Buffer.alloc(m.size)
  await pipeVersion(store, m, {whole: true, chunks: true, sink: async (data, pos) => void data.copy(out, pos)})
  return out
}

describe('history store', () => {
  let dir: string
  let store: HistoryStore
  beforeEach(async () => {
    dir = await makeTempDir('history-store')
    store = new HistoryStore(join(dir, 'history'), {create: true})
  })
  afterEach(() => removeTree(dir))

  it('stores a version under its content digest and gives back the same bytes', async () => {
    const data = randomBytes(3 * CHUNK_SIZE + 123)
    const r = await store.put(data)
    expect(r.digest).to.equal(sha(data))
    expect(r.size).to.equal(data.length)
    expect(store.manifest(r.digest).chunks).to.have.length(4)
    expect((await readAll(store, r.digest)).equals(data)).to.equal(true)
  })

  it('flush: a few files are fdatasync\'ed one by one; from SYNCFS_MIN on, one syncfs (its failure rejects and keeps them for the next flush)', async () => {
    store = new HistoryStore(join(dir, 'history'), {systemDirty: () => 0})
    // the store's directory moved away: the per-file path skips what it cannot open, syncfs cannot start
    const moved = join(dir, 'moved')
    for (let i = 0; i < 3; i++) await store.putChunkOnPool(randomBytes(100))
    fs.renameSync(store.dir, moved)
    await store.flush() // resolves: nothing there to sync
    fs.renameSync(moved, store.dir)

    for (let i = 0; i < SYNCFS_MIN; i++) await store.putChunkOnPool(randomBytes(100))
    fs.renameSync(store.dir, moved)
    const err = await store.flush().then(() => undefined, (error: unknown) => error as NodeJS.ErrnoException)
    expect(err?.code).to.equal('ENOENT')
    fs.renameSync(moved, store.dir)
    await store.flush() // the same files again, now through syncfs
    await store.flush() // and nothing left
  })

  it('flush: with more than SYNCFS_MAX_DIRTY dirty in the kernel, many files are still fdatasync\'ed one by one (no syncfs)', async () => {
    store = new HistoryStore(join(dir, 'history'), {systemDirty: () => Infinity})
    for (let i = 0; i < SYNCFS_MIN + 1; i++) await store.putChunkOnPool(randomBytes(100))
    const moved = join(dir, 'moved')
    fs.renameSync(store.dir, moved)
    await store.flush() // resolves: the per-file path skips what it cannot open
    fs.renameSync(moved, store.dir)
  })

  it('capture with syncOwn syncs its own files before it returns: flush() then has none of them (without: flush has them)', async () => {
    store = new HistoryStore(join(dir, 'history'), {create: true, systemDirty: () => 0})
    const moved = join(dir, 'moved')
    // SYNCFS_MIN + 4 chunks: flush() of them would take the syncfs path, which fails with the store moved away
    const file = join(dir, 'big')
    const data = randomBytes((SYNCFS_MIN + 4) * CHUNK_SIZE + 10)
    fs.writeFileSync(file, data)
    for (const syncOwn of [true, false]) {
      const fd = fs.openSync(file, 'r')
      try {
        const r = await store.capture(fd, undefined, {syncOwn})
        expect(r.digest).to.equal(sha(data))
        expect(r.stored).to.equal(syncOwn ? data.length : 0) // the second capture finds the version stored
      } finally {
        fs.closeSync(fd)
      }

      if (!syncOwn) break
      fs.renameSync(store.dir, moved)
      await store.flush() // resolves: nothing left to sync (its files were synced by the capture)
      fs.renameSync(moved, store.dir)
    }

    // the same bytes stored anew without syncOwn go to flush()
    const other = randomBytes((SYNCFS_MIN + 4) * CHUNK_SIZE + 11)
    fs.writeFileSync(file, other)
    const fd = fs.openSync(file, 'r')
    try {
      await store.capture(fd)
    } finally {
      fs.closeSync(fd)
    }

    fs.renameSync(store.dir, moved)
    const err = await store.flush().then(() => undefined, (error: unknown) => error as NodeJS.ErrnoException)
    expect(err?.code).to.equal('ENOENT')
    fs.renameSync(moved, store.dir)
    expect((await readAll(store, sha(data))).equals(data)).to.equal(true)
  })

  it('dirtyBytes reads Dirty + Writeback from /proc/meminfo, Infinity when they are missing', () => {
    expect(dirtyBytes('MemTotal:       24683620 kB\nDirty:              5044 kB\nWriteback:            52 kB\n')).to.equal((5044 + 52) * 1024)
    expect(dirtyBytes('MemTotal:       24683620 kB\n')).to.equal(Infinity)
    expect(dirtyBytes(fs.readFileSync('/proc/meminfo', 'utf8'))).to.be.a('number').and.not.equal(Infinity)
  })

  it('putChunkOnPool hashes and writes a chunk in one pool job: its name, its bytes, once, no temporary file left', async () => {
    const data = randomBytes(CHUNK_SIZE)
    const chunkDir = join(store.dir, 'chunks')
    expect(await store.putChunkOnPool(data)).to.deep.equal({hash: sha(data), stored: CHUNK_SIZE})
    expect(fs.readFileSync(store.chunkPath(sha(data))).equals(data)).to.equal(true)
    expect(fs.statSync(store.chunkPath(sha(data))).mode & 0o777).to.equal(0o600)
    expect(await store.putChunkOnPool(Buffer.from(data)), 'already there').to.deep.equal({hash: sha(data), stored: 0})
    const same = await Promise.all([1, 2, 3].map(() => store.putChunkOnPool(Buffer.from('one chunk, three writers at once'))))
    expect(new Set(same.map(r => r.hash)).size).to.equal(1)
    const names = fs.readdirSync(chunkDir).flatMap(d => fs.readdirSync(join(chunkDir, d)))
    expect(names.filter(n => n.endsWith('.tmp'))).to.deep.equal([])
    expect(names).to.have.length(2)
    expect((await store.putChunkOnPool(Buffer.alloc(0))).hash).to.equal(EMPTY_DIGEST)
  })

  it('putChunkOnPool with a copy: the same job writes the bytes into another file at an offset too', async () => {
    const data = randomBytes(CHUNK_SIZE)
    const file = join(dir, 'staging')
    const fd = fs.openSync(file, 'w')
    try {
      await store.putChunkOnPool(data, {fd, pos: 1000})
      await store.putChunkOnPool(data, {fd, pos: 1000 + CHUNK_SIZE}) // stored already: still copied
      const got = fs.readFileSync(file)
      expect(got.length).to.equal(1000 + 2 * CHUNK_SIZE)
      expect(got.subarray(1000, 1000 + CHUNK_SIZE).equals(data) && got.subarray(1000 + CHUNK_SIZE).equals(data)).to.equal(true)
    } finally {
      fs.closeSync(fd)
    }

    const err = await store.putChunkOnPool(randomBytes(10), {fd, pos: 0}).catch((error: unknown) => error as NodeJS.ErrnoException)
    expect([err?.code, err?.message]).to.deep.equal(['EBADF', 'storeChunkJob pwrite: Bad file descriptor'])
  })

  it('putChunkOnPool with a step: the same job takes the chunk\'s step of its version\'s hash (as step() on the pool does)', async () => {
    const data = randomBytes(3 * CHUNK_SIZE + 500)
    const first = await store.putChunkOnPool(data.subarray(0, CHUNK_SIZE), undefined, {before: null, offset: 0, last: false})
    const second = await step(data.subarray(CHUNK_SIZE, 2 * CHUNK_SIZE), first.after!, CHUNK_SIZE, false)
    const third = await store.putChunkOnPool(data.subarray(2 * CHUNK_SIZE, 3 * CHUNK_SIZE), undefined, {before: second.after, offset: 2 * CHUNK_SIZE, last: false})
    const last = await store.putChunkOnPool(data.subarray(3 * CHUNK_SIZE), undefined, {before: third.after!, offset: 3 * CHUNK_SIZE, last: true})
    expect(last.after!.toString('hex')).to.equal(sha(data))
    expect([first.hash, third.hash, last.hash]).to.deep.equal([0, 2, 3].map(i => sha(data.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE))))
    expect(first.after!.equals((await step(data.subarray(0, CHUNK_SIZE), null, 0, false)).after)).to.equal(true)
    const err = await store.putChunkOnPool(randomBytes(100), undefined, {before: null, offset: 0, last: false}).catch((error: unknown) => error as Error)
    expect((err as Error).message).to.match(/whole 64-byte blocks/) // a state between blocks only
  })

  it('putChunkOnPool rejects with the failing call and its errno', async () => {
    const data = randomBytes(1000)
    const sub = join(store.dir, 'chunks', sha(data).slice(0, 2))
    fs.writeFileSync(sub, 'a file where its directory should be')
    const err = await store.putChunkOnPool(data).catch((error: unknown) => error as NodeJS.ErrnoException)
    expect(err).to.be.instanceOf(Error)
    expect(err!.code).to.equal('ENOTDIR')
    expect(err!.message).to.match(/storeChunkJob open/)
  })

  it('a version of one chunk is its chunk: no manifest file, its manifest answered from the chunk; tampering and loss still found', async () => {
    const data = randomBytes(CHUNK_SIZE)
    const r = await store.put(data)
    const small = await store.put(Buffer.from('a small document'))
    const file = join(dir, 'f')
    fs.writeFileSync(file, 'captured from a file')
    const fd = fs.openSync(file, 'r')
    const captured = await store.capture(fd).finally(() => fs.closeSync(fd))
    for (const v of [r, small, captured]) {
      expect(fs.existsSync(store.manifestPath(v.digest)), 'no manifest').to.equal(false)
      expect(store.has(v.digest)).to.equal(true)
      expect(store.manifest(v.digest)).to.deep.equal({v: 1, digest: v.digest, size: v.size, chunkSize: CHUNK_SIZE, chunks: [v.digest]})
      expect(store.check(v.digest)).to.equal(undefined)
    }

    expect((await readAll(store, r.digest)).equals(data)).to.equal(true)
    expect(store.stats()).to.deep.include({manifests: 3, chunks: 3, logicalBytes: data.length + small.size + captured.size})
    fs.writeFileSync(store.chunkPath(small.digest), 'a small documenT')
    expect(store.check(small.digest)).to.deep.include({kind: 'history-tampered'})
    fs.writeFileSync(store.chunkPath(small.digest), '')
    expect(store.check(small.digest)).to.deep.include({kind: 'history-tampered'})
    fs.rmSync(store.chunkPath(small.digest))
    expect(store.has(small.digest)).to.equal(false)
    expect(store.check(small.digest)).to.deep.include({kind: 'history-missing'})
  })

  it('reads a version of one chunk an older store kept a manifest for; the chunk decides, the manifest is not read', async () => {
    const old = await store.put(Buffer.from('stored by an older store'))
    fs.mkdirSync(join(store.manifestDir, old.digest.slice(0, 2)), {recursive: true})
    fs.writeFileSync(store.manifestPath(old.digest), JSON.stringify({v: 1, digest: old.digest, size: old.size, chunkSize: CHUNK_SIZE, chunks: [old.digest]}))
    expect(store.stats()).to.deep.include({manifests: 1, logicalBytes: old.size})
    fs.writeFileSync(store.manifestPath(old.digest), '{"v": 1, garbled')
    expect(store.check(old.digest)).to.equal(undefined)
    expect((await readAll(store, old.digest)).toString()).to.equal('stored by an older store')
    fs.rmSync(store.chunkPath(old.digest)) // the manifest left: its chunk is missing
    expect(store.check(old.digest)).to.deep.include({kind: 'history-tampered'}) // the garbled manifest is all there is
    fs.writeFileSync(store.manifestPath(old.digest), JSON.stringify({v: 1, digest: old.digest, size: old.size, chunkSize: CHUNK_SIZE, chunks: [old.digest]}))
    expect(store.check(old.digest)).to.deep.include({kind: 'history-missing'})
  })

  it('deduplicates: the same content twice costs nothing the second time', async () => {
    const data = randomBytes(2 * CHUNK_SIZE)
    expect((await store.put(data)).stored).to.equal(data.length)
    expect((await store.put(Buffer.from(data))).stored).to.equal(0)
    const s = store.stats()
    expect(s.manifests).to.equal(1)
    expect(s.chunks).to.equal(2)
  })

  it('a version that differs in one chunk stores one new chunk', async () => {
    const v1 = randomBytes(16 * CHUNK_SIZE)
    await store.put(v1)
    const v2 = Buffer.from(v1)
    randomBytes(1000).copy(v2, 5 * CHUNK_SIZE + 17)
    const r = await store.put(v2)
    expect(r.stored).to.equal(CHUNK_SIZE)
    const s = store.stats()
    expect(s.chunks).to.equal(17)
    expect(s.logicalBytes).to.equal(32 * CHUNK_SIZE)
    expect(s.savedBytes).to.equal(15 * CHUNK_SIZE)
    expect((await readAll(store, r.digest)).equals(v2)).to.equal(true)
  })

  it('captures a file from an open descriptor (even write-only)', async () => {
    const file = join(dir, 'f')
    const data = randomBytes(CHUNK_SIZE * 5 + 7)
    fs.writeFileSync(file, data)
    const fd = fs.openSync(file, 'r+')
    try {
      const r = await store.capture(fd)
      expect(r.digest).to.equal(sha(data))
      expect(r.size).to.equal(data.length)
    } finally {
      fs.closeSync(fd)
    }

    expect((await readAll(store, sha(data))).equals(data)).to.equal(true)
  })

  it('captures only the first upTo bytes of a file that goes on beyond them (whole chunks, a short last one, one chunk)', async () => {
    const file = join(dir, 'g')
    const data = randomBytes(20 * CHUNK_SIZE + 99) // more than one read of the capture (4 MiB)
    fs.writeFileSync(file, data)
    const fd = fs.openSync(file, 'r')
    try {
      for (const upTo of [17 * CHUNK_SIZE, 17 * CHUNK_SIZE + 5, CHUNK_SIZE - 1, 0]) {
        const r = await store.capture(fd, undefined, {upTo})
        expect(r.digest, `upTo ${upTo}`).to.equal(sha(data.subarray(0, upTo)))
        expect(r.size).to.equal(upTo)
        if (upTo > 0) expect((await readAll(store, r.digest)).equals(data.subarray(0, upTo))).to.equal(true)
      }

      // beyond EOF: the file as it is
      expect((await store.capture(fd, undefined, {upTo: data.length + 1})).digest).to.equal(sha(data))
    } finally {
      fs.closeSync(fd)
    }
  })

  it('a capture resumed from an earlier one of the same growing file stores the version a capture from the start does', async () => {
    const file = join(dir, 'growing')
    const data = randomBytes(21 * CHUNK_SIZE + 77) // several reads of the capture (4 MiB each)
    const first = 9 * CHUNK_SIZE + 5 // the writer had got this far: a short last chunk
    fs.writeFileSync(file, data.subarray(0, first))
    const fd = fs.openSync(file, 'r+')
    try {
      const r1 = await store.capture(fd, undefined, {upTo: first})
      expect(r1.digest).to.equal(sha(data.subarray(0, first)))
      expect(r1.resume?.pos, 'whole chunks only').to.equal(9 * CHUNK_SIZE)
      fs.writeSync(fd, data, first, data.length - first, first) // the writer goes on
      const r2 = await store.capture(fd, undefined, {upTo: data.length, from: r1.resume})
      const r3 = await store.capture(fd, undefined, {upTo: data.length - 3, from: r2.resume}) // reads only a short tail
      const fresh = new HistoryStore(join(dir, 'fresh'), {create: true})
      for (const [got, size] of [[r2, data.length], [r3, data.length - 3]] as const) {
        const whole = await fresh.capture(fd, undefined, {upTo: size})
        expect(got.digest, `size ${size}`).to.equal(sha(data.subarray(0, size)))
        expect(got.digest).to.equal(whole.digest)
        expect(store.manifest(got.digest)).to.deep.equal(fresh.manifest(whole.digest))
        expect(await store.marks(store.manifest(got.digest)), 'marks').to.deep.equal(await fresh.marks(fresh.manifest(whole.digest)))
        expect((await readAll(store, got.digest)).equals(data.subarray(0, size))).to.equal(true)
      }

      expect(r2.stored, 'r2 stored only the chunks beyond the resume point').to.equal(data.length - 9 * CHUNK_SIZE)
      // what the resume point covers is not read again: changed there (which the caller rules out), the version still has the old bytes
      fs.writeSync(fd, Buffer.alloc(10, 1), 0, 10, 0)
      const trusted = await store.capture(fd, undefined, {upTo: data.length, from: r2.resume})
      expect(trusted.digest).to.equal(sha(data))
      // a resume point that does not fit the file (longer than it, or malformed) is not used
      fs.ftruncateSync(fd, 12 * CHUNK_SIZE)
      const cut = fs.readFileSync(file)
      expect((await store.capture(fd, undefined, {from: r2.resume})).digest, 'beyond EOF').to.equal(sha(cut))
      const bad = {pos: 3 * CHUNK_SIZE, chunks: r2.resume!.chunks.slice(0, 2), marks: r2.resume!.marks.slice(0, 2)}
      expect((await store.capture(fd, undefined, {from: bad})).digest, 'malformed').to.equal(sha(cut))
    } finally {
      fs.closeSync(fd)
    }
  })

  it('a capture\'s marks (kept in its resume point) hold about their own 32 bytes each, not blocks of Node\'s shared Buffer pool', async () => {
    const file = join(dir, 'big')
    const chunks = 64
    fs.writeFileSync(file, randomBytes(chunks * CHUNK_SIZE))
    // as in a busy mount: other code takes small Buffers from the pool while the chunks are hashed
    let busy = true
    const others: Buffer[] = []
    const churn = () => {
      if (!busy) return
      for (let i = 0; i < 50; i++) others.push(Buffer.from(randomBytes(32)))
      if (others.length > 1000) others.length = 0
      setImmediate(churn)
    }
    churn()
    const fd = fs.openSync(file, 'r')
    try {
      const r = await store.capture(fd)
      busy = false
      const marks = r.resume!.marks
      expect(marks).to.have.length(chunks)
      const blocks = new Set(marks.map(m => m.buffer))
      const held = [...blocks].reduce((n, b) => n + b.byteLength, 0)
      expect(held, `${blocks.size} blocks behind ${chunks} marks`).to.be.at.most(2 * 32 * chunks)
      // the marks are still the right states: a capture resumed from them stores the same version
      expect((await store.capture(fd, undefined, {from: r.resume})).digest).to.equal(r.digest)
    } finally {
      busy = false
      fs.closeSync(fd)
    }
  })
  it('after a crash, a promised version of a file\'s first bytes is caught up though the file grew beyond them', async () => {
    const first = randomBytes(9 * CHUNK_SIZE + 3)
    fs.writeFileSync(join(dir, 'grown'), Buffer.concat([first, randomBytes(5 * CHUNK_SIZE)])) // the writer went on
    await store.promise('/grown', sha(first), first.length)
    const other = randomBytes(100)
    fs.writeFileSync(join(dir, 'changed'), other)
    await store.promise('/changed', sha(Buffer.from('what it held before')), 19)
    expect(await catchUp(store, dir)).to.deep.equal({captured: 1, lost: 1})
    expect((await readAll(store, sha(first))).equals(first)).to.equal(true)
    expect(store.pending()).to.deep.equal([])
  })

  it('chunks() (the simple reader for small versions) gives the bytes back and refuses an altered chunk', async () => {
    const data = randomBytes(2 * CHUNK_SIZE + 10)
    const {digest} = await store.put(data)
    const parts: Buffer[] = []
    for await (const c of store.chunks(digest)) parts.push(Buffer.from(c))
    expect(Buffer.concat(parts).equals(data)).to.equal(true)
    const file = store.chunkPath(store.manifest(digest).chunks[2])
    fs.writeFileSync(file, Buffer.from('0123456789'))
    const err = await (async () => {
      for await (const _ of store.chunks(digest)) { /* read on */ }
    })().catch((error: unknown) => error)
    expect((err as HistoryError).kind).to.equal('history-tampered')
  })

  it('the empty file is always representable', async () => {
    expect(store.has(EMPTY_DIGEST)).to.equal(true)
    expect(await readAll(store, EMPTY_DIGEST)).to.have.length(0)
    expect(await store.check(EMPTY_DIGEST)).to.equal(undefined)
  })

  it('a corrupt chunk is detected by check and refused by reading', async () => {
    const data = randomBytes(3 * CHUNK_SIZE)
    const {digest} = await store.put(data)
    const m = store.manifest(digest)
    const chunk = store.chunkPath(m.chunks[1])
    const bytes = fs.readFileSync(chunk)
    bytes[10] ^= 0xff
    fs.writeFileSync(chunk, bytes)
    expect(await store.check(digest)).to.include({kind: 'history-tampered'})
    let err: unknown
    try {
      await readAll(store, digest)
    } catch (error) {
      err = error
    }

    expect(err).to.be.instanceOf(HistoryError)
    expect((err as HistoryError).kind).to.equal('history-tampered')
  })

  it('a missing chunk or manifest is history-missing; a manifest listing other chunks does not reassemble', async () => {
    const a = await store.put(randomBytes(2 * CHUNK_SIZE))
    const b = await store.put(randomBytes(2 * CHUNK_SIZE))
    fs.rmSync(store.chunkPath(store.manifest(a.digest).chunks[0]))
    expect(await store.check(a.digest)).to.include({kind: 'history-missing'})
    expect(await store.check(sha(Buffer.from('never stored')))).to.include({kind: 'history-missing'})
    // b's manifest now lists a's surviving chunk
    const mb = store.manifest(b.digest)
    mb.chunks[1] = store.manifest(a.digest).chunks[1]
    fs.writeFileSync(store.manifestPath(b.digest), JSON.stringify(mb))
    expect(store.check(b.digest)).to.include({kind: 'history-tampered'}) // verify's check, not only the readers
    let err: unknown
    try {
      await readAll(store, b.digest)
    } catch (error) {
      err = error
    }

    expect((err as HistoryError).kind).to.equal('history-tampered')
  })
})
