// A large file's version is stored in the background after its digest is
// recorded; while that capture reads the file's first bytes, a writer that
// goes on beyond them must not wait for it (8 remote clients writing 1 GiB
// each got EIO when their writes waited behind captures of their own files),
// and a write that would change the bytes being read must.
import {expect} from 'chai'
import crypto, {createHash} from 'node:crypto'
import fs, {constants as C} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {catchUp} from '../../../src/history/recover.js'
import {CHUNK_SIZE, HistoryStore, type CaptureOptions, type CaptureResult, type ContentCapture} from '../../../src/history/store.js'
import {Journal} from '../../../src/volume/journal.js'
import {LocalVolume} from '../../../src/volume/local-volume.js'
import {Recorder} from '../../../src/volume/recorder.js'
import {InstantBroadcast} from '../../fakes/instant-broadcast.js'

const root = {uid: 0, gid: 0, pid: 1}
const MiB = 1024 * 1024
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** A LocalVolume over a fresh directory with its journal and the history `makeHistory` gives (for its history directory); close() removes it all. */
function testVolume<H extends ContentCapture>(label: string, makeHistory: (dir: string) => H, digestIntervalMs = 0) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pacio-${label}-`))
  fs.mkdirSync(path.join(dir, '.paciofs'))
  const journal = Journal.open(path.join(dir, '.paciofs', 'journal.db'), 'vol-1')
  const bc = new InstantBroadcast()
  const history = makeHistory(path.join(dir, '.paciofs', 'history'))
  const vol = new LocalVolume(dir, new Recorder(journal, bc, bc.pid), {digestIntervalMs, history})
  return {
    dir, vol, history,
    async close() {
      await vol.close()
      journal.close()
      fs.rmSync(dir, {recursive: true, force: true})
    },
  }
}

/** Captures that wait until let go, then hash what the file holds below upTo. */
class HeldCapture implements ContentCapture {
  readonly asked: Array<CaptureOptions | undefined> = []
  readonly finished: string[] = []
  private release!: () => void
  private readonly held = new Promise<void>(resolve => (this.release = resolve))
  private started!: () => void
  readonly running = new Promise<void>(resolve => (this.started = resolve))

  letGo(): void {
    this.release()
  }

  async capture(fd: number, _known?: {digest: string; size: number}, opts?: CaptureOptions): Promise<CaptureResult> {
    this.asked.push(opts)
    this.started()
    await this.held
    const size = Math.min(fs.fstatSync(fd).size, opts?.upTo ?? Infinity)
    const buf = Buffer.alloc(size)
    fs.readSync(fd, buf, 0, size, 0)
    return {digest: sha(buf), size, stored: size}
  }

  async promise(_path: string, digest: string, _size?: number): Promise<string> {
    return digest
  }

  async done(token: string): Promise<void> {
    this.finished.push(token)
  }

  async flush(): Promise<void> {}
  async put(data: Buffer): Promise<CaptureResult> {
    return {digest: sha(data), size: data.length, stored: 0}
  }
}

/** 'settled' if p settles within ms, else 'waiting'. */
async function within(p: Promise<unknown>, ms: number): Promise<'settled' | 'waiting'> {
  let timer: NodeJS.Timeout | undefined
  const r = await Promise.race([p.then(() => 'settled' as const), new Promise<'waiting'>(resolve => (timer = setTimeout(() => resolve('waiting'), ms)))])
  clearTimeout(timer)
  return r
}

describe('LocalVolume: background captures and writes', () => {
  let t: ReturnType<typeof testVolume<HeldCapture>>
  let dir: string
  let vol: LocalVolume
  let history: HeldCapture

  beforeEach(() => {
    ({dir, vol, history} = t = testVolume('capgate', () => new HeldCapture()))
  })

  afterEach(async () => {
    history.letGo()
    await t.close()
  })

  /** A 9 MiB file written sequentially and fsynced: its digest is recorded and its version captured in the background. */
  async function fsyncedLargeFile(): Promise<{fh: number; first: Buffer}> {
    const fh = await vol.create('/big', 0o644, C.O_RDWR, root)
    const first = Buffer.alloc(9 * MiB, 7)
    for (let off = 0; off < first.length; off += MiB) await vol.write('/big', fh, first.subarray(off, off + MiB), MiB, off, root)
    await vol.fsync('/big', fh, false)
    await history.running
    return {fh, first}
  }

  it('a write beyond the bytes being captured goes ahead; the capture gets exactly those bytes', async () => {
    const {fh, first} = await fsyncedLargeFile()
    expect(history.asked).to.deep.equal([{upTo: first.length, syncOwn: true}])
    const more = Buffer.alloc(MiB, 8)
    expect(await within(vol.write('/big', fh, more, MiB, first.length, root), 5_000), 'the sequential writer waited for the capture').to.equal('settled')
    history.letGo()
    await vol.release('/big', fh)
    await vol.close() // waits for the background capture
    // the fsync's version (its first 9 MiB), then the release's (all 10)
    expect(history.finished, 'the captures matched the recorded digests').to.deep.equal([sha(first), sha(Buffer.concat([first, more]))])
    expect(fs.statSync(path.join(dir, 'big')).size).to.equal(10 * MiB)
  })

  it('the release records its version without waiting for the capture of the one before; the captures follow each other', async () => {
    const {fh, first} = await fsyncedLargeFile()
    const more = Buffer.alloc(MiB, 8)
    await vol.write('/big', fh, more, MiB, first.length, root)
    expect(await within(vol.release('/big', fh), 5_000), 'the release waited for the earlier version\'s capture').to.equal('settled')
    expect(history.asked, 'the second capture began before the first ended').to.have.length(1)
    history.letGo()
    await vol.close()
    expect(history.finished).to.deep.equal([sha(first), sha(Buffer.concat([first, more]))])
  })

  it('a write into the bytes being captured, and a truncate, wait for the capture', async () => {
    const {fh, first} = await fsyncedLargeFile()
    const over = vol.write('/big', fh, Buffer.from('changed'), 7, 4096, root)
    expect(await within(over, 300), 'an overwrite of captured bytes went ahead').to.equal('waiting')
    const cut = vol.ftruncate('/big', fh, MiB, root)
    expect(await within(cut, 100), 'a truncate went ahead of the capture').to.equal('waiting')
    history.letGo()
    await over
    await cut
    await vol.release('/big', fh)
    await vol.close()
    expect(history.finished).to.deep.equal([sha(first)])
  })
})

/** A real store that notes where each capture was told to resume from (undefined: from the start). */
class ResumeSpy extends HistoryStore {
  readonly froms: Array<number | undefined> = []
  override async capture(fd: number, known?: {digest: string; size: number}, opts?: CaptureOptions): Promise<CaptureResult> {
    this.froms.push(opts?.from?.pos)
    return super.capture(fd, known, opts)
  }
}

describe('LocalVolume: a growing file\'s captures resume from the previous one', () => {
  let t: ReturnType<typeof testVolume<ResumeSpy>>
  let dir: string
  let vol: LocalVolume
  let store: ResumeSpy

  beforeEach(() => {
    ({dir, vol, history: store} = t = testVolume('capresume', d => new ResumeSpy(d, {create: true})))
  })

  afterEach(() => t.close())

  const writeAt = async (fh: number, data: Buffer, at: number) => {
    for (let off = 0; off < data.length; off += MiB) await vol.write('/big', fh, data.subarray(off, off + MiB), Math.min(MiB, data.length - off), at + off, root)
  }

  /** Until the background captures so far have stored their versions. */
  const stored = async (digests: string[]) => {
    for (let i = 0; i < 500 && !digests.every(d => store.has(d)); i++) await new Promise(resolve => setTimeout(resolve, 20))
  }

  it('each version of a sequential writer is read from where the last capture ended, and is the version a capture from the start stores', async () => {
    const data = crypto.randomBytes(25 * MiB + 1000)
    const cuts = [9 * MiB + 100, 18 * MiB]
    const fh = await vol.create('/big', 0o644, C.O_RDWR, root)
    let at = 0
    for (const cut of cuts) {
      await writeAt(fh, data.subarray(at, cut), at)
      at = cut
      await vol.fsync('/big', fh, false)
      await stored([sha(data.subarray(0, cut))]) // before the writer goes on (a capture still running would be the prior one)
    }

    await writeAt(fh, data.subarray(at), at)
    await vol.release('/big', fh)
    await vol.close()
    const sizes = [...cuts, data.length]
    // the first from the start; then from the whole chunks of the one before (9 MiB + 100 -> 36 chunks of 256 KiB)
    expect(store.froms).to.deep.equal([undefined, 36 * CHUNK_SIZE, 18 * MiB])
    const fresh = new HistoryStore(path.join(dir, 'fresh'), {create: true})
    for (const size of sizes) {
      const digest = sha(data.subarray(0, size))
      expect(store.has(digest), `version of ${size} bytes stored`).to.equal(true)
      const fd = fs.openSync(path.join(dir, 'big'), 'r')
      try {
        expect((await fresh.capture(fd, undefined, {upTo: size})).digest).to.equal(digest)
      } finally {
        fs.closeSync(fd)
      }

      expect(store.manifest(digest)).to.deep.equal(fresh.manifest(digest))
    }

    expect(store.pending(), 'no capture left owed').to.deep.equal([])
  })

  it('a write below the last capture ends the resume: the next version is read whole', async () => {
    const data = crypto.randomBytes(10 * MiB)
    const fh = await vol.create('/big', 0o644, C.O_RDWR, root)
    await writeAt(fh, data.subarray(0, 9 * MiB), 0)
    await vol.fsync('/big', fh, false)
    await stored([sha(data.subarray(0, 9 * MiB))])
    data.fill(5, 0, 4096)
    await vol.write('/big', fh, data.subarray(0, 4096), 4096, 0, root) // rewrites the start
    await writeAt(fh, data.subarray(9 * MiB), 9 * MiB)
    await vol.release('/big', fh)
    await vol.close()
    expect(store.froms).to.deep.equal([undefined, undefined])
    expect(store.has(sha(data)), 'the version with the new start').to.equal(true)
  })
})

/** A ResumeSpy that also notes each promise (the record of a version). */
class DeferSpy extends ResumeSpy {
  readonly promised: string[] = []
  override async promise(volPath: string, digest: string, size?: number): Promise<string> {
    const token = await super.promise(volPath, digest, size)
    this.promised.push(digest) // once its promise is on disk
    return token
  }
}

describe('LocalVolume: the periodic digest of a file being written stores its version later', () => {
  let t: ReturnType<typeof testVolume<DeferSpy>>
  let dir: string
  let vol: LocalVolume
  let store: DeferSpy
  const until = async (ok: () => boolean) => {
    for (let i = 0; i < 500 && !ok(); i++) await new Promise(resolve => setTimeout(resolve, 10))
    expect(ok(), 'in time').to.equal(true)
  }

  beforeEach(() => {
    ({dir, vol, history: store} = t = testVolume('capdefer', d => new DeferSpy(d, {create: true}), 100))
  })

  afterEach(() => t.close())

  /** 9 MiB written sequentially, left open until the periodic digest has recorded them. */
  async function digested(): Promise<{fh: number; first: Buffer}> {
    const fh = await vol.create('/big', 0o644, C.O_RDWR, root)
    const first = crypto.randomBytes(9 * MiB)
    for (let off = 0; off < first.length; off += MiB) await vol.write('/big', fh, first.subarray(off, off + MiB), MiB, off, root)
    await until(() => store.promised.includes(sha(first)))
    return {fh, first}
  }

  it('is not read back while the file stays open; the close stores it, and the close\'s version resumes from it', async () => {
    const {fh, first} = await digested()
    await new Promise(resolve => setTimeout(resolve, 400))
    expect(store.froms, 'a capture ran while the writer still had the file open').to.deep.equal([])
    expect(store.pending().map(p => p.digest)).to.deep.equal([sha(first)])
    const more = crypto.randomBytes(MiB)
    await vol.write('/big', fh, more, MiB, first.length, root)
    await vol.release('/big', fh)
    await vol.close()
    expect(store.has(sha(first)), 'the periodic digest\'s version').to.equal(true)
    expect(store.has(sha(Buffer.concat([first, more]))), 'the close\'s version').to.equal(true)
    expect(store.froms[0], 'the first capture reads from the start').to.equal(undefined)
    expect(store.froms.slice(1).every(f => f !== undefined && f > 0), `later captures resume (${store.froms})`).to.equal(true)
    expect(store.pending(), 'no capture left owed').to.deep.equal([])
  })

  it('the last writer\'s close stores it at once, though nothing was written since the digest', async () => {
    const {fh, first} = await digested()
    await vol.release('/big', fh)
    await until(() => store.pending().length === 0) // not DEFER_CAPTURE_MAX_MS later
    expect(store.has(sha(first))).to.equal(true)
  })

  it('a writer\'s fsync stores it at once, though nothing was written since the digest', async () => {
    const {fh, first} = await digested()
    await vol.fsync('/big', fh, false)
    await until(() => store.pending().length === 0)
    expect(store.has(sha(first))).to.equal(true)
    await vol.release('/big', fh)
  })

  it('is not taken of a large file rewritten in place (it would read the whole file each time); the close records it', async () => {
    const {fh, first} = await digested()
    await vol.release('/big', fh)
    await until(() => store.pending().length === 0)
    const captures = store.froms.length
    const again = await vol.open('/big', C.O_WRONLY, root) // no O_TRUNC: the running digest covers only what is rewritten
    const head = crypto.randomBytes(MiB)
    await vol.write('/big', again, head, MiB, 0, root)
    const now = Buffer.concat([head, first.subarray(MiB)])
    await new Promise(resolve => setTimeout(resolve, 500)) // five periods
    expect(store.froms.length, 'captures while the file was rewritten').to.equal(captures)
    expect(store.has(sha(now)), 'stored before the close').to.equal(false)
    await vol.release('/big', again)
    await until(() => store.has(sha(now)))
  })

  it('a write into its bytes starts its capture and waits for it', async () => {
    const {fh, first} = await digested()
    expect(await within(vol.write('/big', fh, Buffer.from('x'), 1, 0, root), 5_000), 'the write into the deferred version').to.equal('settled')
    expect(store.has(sha(first)), 'stored before the write changed it').to.equal(true)
    await vol.release('/big', fh)
  })

  it('a rename starts it (after a crash a promised version is caught up from its path)', async () => {
    const {fh, first} = await digested()
    await vol.rename('/big', '/moved', root)
    await until(() => store.pending().length === 0) // the promise is kept once the version is stored
    expect(store.has(sha(first))).to.equal(true)
    await vol.release('/moved', fh)
  })

  it('after a crash while it is deferred (the volume never closed), the next mount\'s catch-up stores it', async () => {
    const {fh, first} = await digested()
    const more = crypto.randomBytes(MiB)
    await vol.write('/big', fh, more, MiB, first.length, root) // the writer went on past the version
    expect(store.froms, 'captured before the crash').to.deep.equal([])
    // the process is gone: nothing more of this volume runs; its promise is on disk
    const after = new HistoryStore(path.join(dir, '.paciofs', 'history'))
    expect(after.pending().map(p => p.digest)).to.include(sha(first)) // (and the next periodic digest's, if it came)
    const caught = await catchUp(after, dir)
    expect(caught.lost, 'versions lost').to.equal(0)
    expect(caught.captured).to.be.at.least(1)
    expect(after.has(sha(first))).to.equal(true)
    await vol.release('/big', fh)
  })

  it('closing the volume stores it at once (not after the deferral\'s limit)', async () => {
    const {fh, first} = await digested()
    // nothing written since the digest: no new record, the deferred capture still owed; the release may
    // also close the descriptor while the digest's record is still being made (the capture reads its own)
    await vol.release('/big', fh)
    expect(await within(vol.close(), 5_000), 'close waited for the deferral\'s limit').to.equal('settled')
    expect(store.has(sha(first))).to.equal(true)
    expect(store.pending()).to.deep.equal([])
  })
})
