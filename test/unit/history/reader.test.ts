import {expect} from 'chai'
import {createHash, randomBytes} from 'node:crypto'
import fs from 'node:fs'
import {join} from 'node:path'
import {CHUNK_SIZE, HistoryError, HistoryStore, type Manifest} from '../../../src/history/store.js'
import {ChunkCache, pipeProven, pipeVersion, proveManifest, proveVersion} from '../../../src/history/reader.js'
import {step, type ChainState} from '../../../src/history/sha256.js'
import {makeTempDir, removeTree} from '../../helpers/tmp.js'

/** Reads m through pipeVersion; returns what the sink got (offsets and bytes) and the error, if any. */
async function pipe(store: HistoryStore, m: Manifest, opts: {whole: boolean; chunks: boolean; slots?: number; slowSink?: boolean}) {
  const got: Array<{pos: number; data: Buffer}> = []
  let error: unknown
  try {
    await pipeVersion(store, m, {...opts, sink: async (data, pos) => {
      got.push({pos, data: Buffer.from(data)}) // in call order; data is a reused buffer: copy it
      if (opts.slowSink) {
        await new Promise(r => setTimeout(r, Math.random() * 3))
        expect(data.equals(got.find(g => g.pos === pos)!.data), 'the buffer is not reused before the sink is done').to.equal(true)
      }
    }})
  } catch (error_) {
    error = error_
  }

  return {got, error}
}

function alter(store: HistoryStore, m: Manifest, i: number): void {
  const file = store.chunkPath(m.chunks[i])
  const bytes = fs.readFileSync(file)
  bytes[bytes.length >> 1] ^= 0x40
  fs.writeFileSync(file, bytes)
}

describe('history reader', () => {
  let dir: string
  let store: HistoryStore
  beforeEach(async () => {
    dir = await makeTempDir('history-reader')
    store = new HistoryStore(join(dir, 'history'), {create: true})
  })
  afterEach(() => removeTree(dir))

  it('pipes a version in order, through fewer buffers than chunks and a slow sink, with every check mode', async () => {
    const data = randomBytes(9 * CHUNK_SIZE + 4321)
    const {digest} = await store.put(data)
    const m = store.manifest(digest)
    for (const mode of [{whole: true, chunks: false}, {whole: true, chunks: true}, {whole: false, chunks: true}]) {
      const {got, error} = await pipe(store, m, {...mode, slots: 3, slowSink: true})
      expect(error, JSON.stringify(mode)).to.equal(undefined)
      expect(got.map(g => g.pos)).to.deep.equal(Array.from({length: 10}, (_, i) => i * CHUNK_SIZE))
      expect(Buffer.concat(got.map(g => g.data)).equals(data), JSON.stringify(mode)).to.equal(true)
    }
  })

  it('the whole-content check alone refuses an altered chunk, names it, and never hands out the last chunk', async () => {
    const {digest} = await store.put(randomBytes(6 * CHUNK_SIZE))
    const m = store.manifest(digest)
    alter(store, m, 2)
    const {got, error} = await pipe(store, m, {whole: true, chunks: false, slots: 2})
    expect(error).to.be.instanceOf(HistoryError)
    expect((error as HistoryError).kind).to.equal('history-tampered')
    expect((error as Error).message).to.match(new RegExp(`chunk 2 \\(${m.chunks[2]}\\).*does not match its hash`))
    expect(got.length, 'the last chunk is withheld').to.be.lessThan(6)
  })

  it('checking chunks stops at the altered chunk; a missing or longer chunk is refused too', async () => {
    const {digest} = await store.put(randomBytes(5 * CHUNK_SIZE))
    const m = store.manifest(digest)
    alter(store, m, 3)
    const altered = await pipe(store, m, {whole: false, chunks: true, slots: 2})
    expect((altered.error as HistoryError).kind).to.equal('history-tampered')
    expect(altered.got.map(g => g.pos), 'nothing from the altered chunk on').to.deep.equal([0, 1, 2].map(i => i * CHUNK_SIZE))

    const b = store.manifest((await store.put(randomBytes(3 * CHUNK_SIZE))).digest)
    fs.appendFileSync(store.chunkPath(b.chunks[1]), 'x')
    expect(((await pipe(store, b, {whole: true, chunks: false})).error as HistoryError).kind).to.equal('history-tampered')
    fs.rmSync(store.chunkPath(b.chunks[1]))
    expect(((await pipe(store, b, {whole: true, chunks: false})).error as HistoryError).kind).to.equal('history-missing')
  })

  it('a sink that fails stops the pipe with its error', async () => {
    const m = store.manifest((await store.put(randomBytes(8 * CHUNK_SIZE))).digest)
    let calls = 0
    const err = await pipeVersion(store, m, {whole: true, chunks: false, slots: 2, sink: async () => {
      if (++calls === 3) throw new Error('disk full')
    }}).catch((error: unknown) => error)
    expect((err as Error).message).to.equal('disk full')
  })

  it('proveManifest refuses a manifest whose chunks are intact but belong to another version', async () => {
    const a = await store.put(randomBytes(2 * CHUNK_SIZE))
    const b = await store.put(randomBytes(2 * CHUNK_SIZE))
    const mb = store.manifest(b.digest)
    mb.chunks[1] = store.manifest(a.digest).chunks[1]
    fs.writeFileSync(store.manifestPath(b.digest), JSON.stringify(mb))
    const err = await proveManifest(store, b.digest).catch((error: unknown) => error)
    expect((err as HistoryError).kind).to.equal('history-tampered')
    expect((err as Error).message).to.match(/does not reassemble/)
    expect((await proveManifest(store, a.digest)).chunks).to.have.length(2)
  })

  it('remembers the manifests it computed: an altered manifest file does not change them', async () => {
    const data = randomBytes(3 * CHUNK_SIZE)
    const {digest} = await store.put(data)
    const computed = structuredClone(store.vouchedManifest(digest))
    const forged = store.manifest(digest)
    forged.chunks[0] = forged.chunks[1]
    fs.writeFileSync(store.manifestPath(digest), JSON.stringify(forged))
    expect(store.vouchedManifest(digest)).to.deep.equal(computed)
    expect(new HistoryStore(store.dir).vouchedManifest(digest), 'another process knows nothing').to.equal(undefined)
  })

  it('the chunk cache serves random reads from few buffers, checks each chunk, and retries a failed one', async () => {
    const data = randomBytes(12 * CHUNK_SIZE + 99)
    const {digest} = await store.put(data)
    const m = store.manifest(digest)
    const cache = new ChunkCache(store, 3)
    const order = Array.from({length: 60}, () => Math.floor(Math.random() * m.chunks.length))
    // many reads at once, more than the cache holds: each sees its own chunk's bytes
    const results = await Promise.all(order.map(async i => {
      cache.prefetch({m}, i + 1, i + 4)
      return {i, bytes: await cache.with({m}, i, d => Buffer.from(d))}
    }))
    for (const {i, bytes} of results) expect(bytes.equals(data.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE)), `chunk ${i}`).to.equal(true)

    const fresh = new ChunkCache(store, 3)
    const file = store.chunkPath(m.chunks[4])
    const good = fs.readFileSync(file)
    alter(store, m, 4)
    const err = await fresh.with({m}, 4, d => d.length).catch((error: unknown) => error)
    expect((err as HistoryError).kind).to.equal('history-tampered')
    fs.writeFileSync(file, good)
    expect(await fresh.with({m}, 4, d => Buffer.from(d).equals(good)), 'a repaired chunk is read again').to.equal(true)
  })

  describe('with marks (the hash states between chunks)', () => {
    /** Reads m to a positional sink (the marks are used then); returns the bytes and the error, if any. */
    async function pipeTo(m: Manifest) {
      const out = Buffer.alloc(m.size)
      const error = await pipeVersion(store, m, {whole: true, chunks: false, positional: true, sink: async (data, pos) => {
        data.copy(out, pos)
      }}).then(() => undefined, (error_: unknown) => error_)
      return {out, error}
    }

    /** Marks computed over the bytes a version's chunk files hold now (what an attacker who altered them could write). */
    async function marksOver(m: Manifest): Promise<Buffer> {
      let state: ChainState = null
      const marks: Buffer[] = []
      for (let i = 0; i < m.chunks.length - 1; i++) {
        state = Buffer.from((await step(fs.readFileSync(store.chunkPath(m.chunks[i])), state, i * CHUNK_SIZE, false)).after)
        marks.push(state)
      }

      return Buffer.concat(marks)
    }

    it('stores them for a version of several chunks (put and capture) and reads it back through them', async () => {
      const data = randomBytes(7 * CHUNK_SIZE + 11)
      const {digest} = await store.put(data)
      const m = store.manifest(digest)
      expect((await store.marks(m))!.length, "8 chunks: 7 marks").to.equal(7 * 32)
      expect((await pipeTo(m)).out.equals(data)).to.equal(true)

      const file = join(dir, 'whole-chunks.bin')
      const whole = randomBytes(4 * CHUNK_SIZE)
      fs.writeFileSync(file, whole)
      const fd = fs.openSync(file, 'r')
      const got = await new HistoryStore(store.dir).capture(fd).finally(() => fs.closeSync(fd))
      expect(got.digest).to.equal(createHash('sha256').update(whole).digest('hex'))
      const mw = store.manifest(got.digest)
      expect((await store.marks(mw))!.length).to.equal(3 * 32)
      expect((await pipeTo(mw)).out.equals(whole)).to.equal(true)
      expect(await store.marks(store.manifest((await store.put(randomBytes(100))).digest)), 'one chunk: none').to.equal(undefined)
    })

    it('wrong or missing marks only cost the sequential check: the bytes still come back', async () => {
      const data = randomBytes(5 * CHUNK_SIZE + 3)
      const {digest} = await store.put(data)
      const m = store.manifest(digest)
      const marks = fs.readFileSync(store.marksPath(digest))
      marks[40] ^= 1
      fs.writeFileSync(store.marksPath(digest), marks)
      expect((await pipeTo(m)).out.equals(data)).to.equal(true)
      fs.writeFileSync(store.marksPath(digest), marks.subarray(0, 64))
      expect((await pipeTo(m)).out.equals(data), 'marks of the wrong length are ignored').to.equal(true)
      fs.rmSync(store.marksPath(digest))
      expect((await pipeTo(m)).out.equals(data)).to.equal(true)
      expect((await proveVersion(store, digest)).marks, 'no marks: proven by the chunk list').to.equal(undefined)
    })

    it('an appending sink (a network stream) gets every chunk once, in order, also when the marks are wrong from chunk 3 on', async () => {
      const data = randomBytes(6 * CHUNK_SIZE + 9)
      const {digest} = await store.put(data)
      const m = store.manifest(digest)
      const appended = async () => {
        const parts: Buffer[] = []
        let next = 0
        const error = await pipeVersion(store, m, {whole: true, chunks: false, slots: 4, sink: async (piece, pos) => {
          expect(pos, 'in order, none twice').to.equal(next)
          next += piece.length
          parts.push(Buffer.from(piece))
          await new Promise(r => setTimeout(r, Math.random() * 2))
        }}).then(() => undefined, (error_: unknown) => error_)
        return {out: Buffer.concat(parts), error}
      }

      expect((await appended()).out.equals(data), 'through the marks').to.equal(true)
      const marks = fs.readFileSync(store.marksPath(digest))
      marks[3 * 32 + 1] ^= 1 // the state after chunk 3: chunk 3's step misses it
      fs.writeFileSync(store.marksPath(digest), marks)
      const wrong = await appended()
      expect(wrong.error).to.equal(undefined)
      expect(wrong.out.equals(data), 'chunks 0-2 from the marked pass, 3-6 from the sequential one').to.equal(true)

      alter(store, m, 4)
      fs.writeFileSync(store.marksPath(digest), await marksOver(m)) // marks that agree with the altered chunk
      const altered = await appended()
      expect((altered.error as HistoryError).kind).to.equal('history-tampered')
      expect(altered.out.length, 'all but the last chunk: never the last').to.equal(6 * CHUNK_SIZE)
    })

    it('headroom: each chunk comes with that many free bytes before it in its buffer, the bytes unchanged', async () => {
      const data = randomBytes(3 * CHUNK_SIZE + 5)
      const {digest} = await store.put(data)
      const parts: Buffer[] = []
      await pipeVersion(store, store.manifest(digest), {whole: true, chunks: false, slots: 2, headroom: 5, sink: async piece => {
        expect(piece.byteOffset).to.be.at.least(5)
        Buffer.from(piece.buffer, piece.byteOffset - 5, 5).fill(0xee) // the sink may write there
        parts.push(Buffer.from(piece))
      }})
      expect(Buffer.concat(parts).equals(data)).to.equal(true)
    })

    it('an altered chunk is refused even with marks recomputed over it: the last step misses the digest', async () => {
      const {digest} = await store.put(randomBytes(6 * CHUNK_SIZE))
      const m = store.manifest(digest)
      alter(store, m, 2)
      fs.writeFileSync(store.marksPath(digest), await marksOver(m))
      const {error} = await pipeTo(m)
      expect((error as HistoryError).kind).to.equal('history-tampered')
      expect((error as Error).message).to.match(/chunk 2 /)
      expect(await proveVersion(store, digest).catch((error_: unknown) => (error_ as HistoryError).kind)).to.equal('history-tampered')
    })

    it('proveVersion refuses a swapped chunk list with marks to match, and proves a good version with its marks', async () => {
      const a = await store.put(randomBytes(3 * CHUNK_SIZE))
      const b = await store.put(randomBytes(3 * CHUNK_SIZE))
      const mb = store.manifest(b.digest)
      mb.chunks[1] = store.manifest(a.digest).chunks[1]
      fs.writeFileSync(store.manifestPath(b.digest), JSON.stringify(mb))
      fs.writeFileSync(store.marksPath(b.digest), await marksOver(mb))
      const err = await proveVersion(store, b.digest).catch((error: unknown) => error)
      expect((err as HistoryError).kind).to.equal('history-tampered')
      const va = await proveVersion(store, a.digest)
      expect(va.marks!.length).to.equal(2 * 32)
    })

    it('pipeProven streams a proven version in order and refuses a chunk altered after the proof', async () => {
      const data = randomBytes(6 * CHUNK_SIZE + 77)
      const {digest} = await store.put(data)
      for (const v of [await proveVersion(store, digest), {m: await proveManifest(store, digest)}]) {
        const parts: Buffer[] = []
        await pipeProven(store, v, async data_ => {
          parts.push(Buffer.from(data_))
        })
        expect(Buffer.concat(parts).equals(data), v.marks ? 'by marks' : 'by chunk list').to.equal(true)
      }

      const v = await proveVersion(store, digest)
      alter(store, v.m, 3)
      const got: number[] = []
      const err = await pipeProven(store, v, async (_d, pos) => {
        got.push(pos)
      }).catch((error: unknown) => error)
      expect((err as Error).message).to.match(/chunk 3 /)
      expect(got, 'only the chunks before it').to.deep.equal([0, CHUNK_SIZE, 2 * CHUNK_SIZE])
    })

    it('the chunk cache checks each chunk by its step between proven marks', async () => {
      const data = randomBytes(9 * CHUNK_SIZE + 1)
      const {digest} = await store.put(data)
      const v = await proveVersion(store, digest)
      expect(v.marks).to.not.equal(undefined)
      const cache = new ChunkCache(store, 3)
      const order = Array.from({length: 30}, () => Math.floor(Math.random() * v.m.chunks.length))
      const results = await Promise.all(order.map(async i => ({i, bytes: await cache.with(v, i, d => Buffer.from(d))})))
      for (const {i, bytes} of results) expect(bytes.equals(data.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE)), `chunk ${i}`).to.equal(true)
      alter(store, v.m, 9)
      const fresh = new ChunkCache(store, 3)
      const err = await fresh.with(v, 9, d => d.length).catch((error: unknown) => error)
      expect((err as HistoryError).kind).to.equal('history-tampered')
      expect((err as Error).message).to.match(/chunk 9 /)
    })
  })
})
