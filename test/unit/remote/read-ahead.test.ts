import {expect} from 'chai'
import {EventEmitter} from 'node:events'
import {ReadAhead, TRAIL, type ChunkStream} from '../../../src/remote/read-ahead.js'

/** A fake server: a file of `size` bytes (byte i = i % 251), streamed in chunks of `chunk`, on demand. */
function fakeFile(size: number, chunk: number, opts: {failAt?: number; silent?: boolean} = {}) {
  const opened: Array<{offset: number; length: number; cancelled: boolean}> = []
  const open = async (offset: number, length: number): Promise<ChunkStream> => {
    const rec = {offset, length, cancelled: false}
    opened.push(rec)
    const s = Object.assign(new EventEmitter(), {cancel: () => (rec.cancelled = true)})
    setImmediate(() => {
      if (opts.silent) return
      let pos = offset
      const end = Math.min(offset + length, size)
      while (pos < end && !rec.cancelled) {
        if (opts.failAt !== undefined && pos >= opts.failAt) {
          s.emit('data', {error: {errno: 'EIO', message: 'disk'}, data: Buffer.alloc(0)})
          s.emit('end')
          return
        }

        const n = Math.min(chunk, end - pos)
        const data = Buffer.alloc(n)
        for (let i = 0; i < n; i++) data[i] = (pos + i) % 251
        s.emit('data', {error: null, data})
        pos += n
      }

      s.emit('end')
    })
    return s
  }

  return {open, opened}
}

/** A read-ahead whose streams the test feeds by hand (each opened stream is kept with its offset). */
function manualStreams(window: number) {
  const streams: Array<{s: EventEmitter & {cancel(): void}; offset: number}> = []
  const ra = new ReadAhead(async offset => {
    const s = Object.assign(new EventEmitter(), {cancel: () => {}})
    streams.push({s, offset})
    return s
  }, 0, {window})
  return {ra, streams}
}

/** A reply carrying the file's n bytes at offset (byte i = i % 251). */
function piece(offset: number, n: number) {
  const data = Buffer.alloc(n)
  for (let i = 0; i < n; i++) data[i] = (offset + i) % 251
  return {error: null, data}
}

const expectBytes = (buf: Buffer, n: number, pos: number) => {
  for (let i = 0; i < n; i++) if (buf[i] !== (pos + i) % 251) throw new Error(`byte ${pos + i} is ${buf[i]}`)
}

describe('remote: streamed read-ahead', () => {
  it('serves a sequential reader the exact bytes, to the end of the file, with bounded windows', async () => {
    const size = 10 * 65536 + 123
    const f = fakeFile(size, 65536)
    const ra = new ReadAhead(f.open, 0, {window: 4 * 65536})
    const buf = Buffer.alloc(50_000)
    let pos = 0
    for (;;) {
      const n = await ra.read(buf, buf.length, pos)
      expect(n).to.not.equal(undefined)
      if (n === 0) break
      expectBytes(buf, n!, pos)
      pos += n!
    }

    expect(pos).to.equal(size)
    // windows asked for in order, each a window long, never more than two ahead of the reader
    expect(f.opened.map(o => o.offset)).to.deep.equal([0, 4 * 65536, 8 * 65536])
    ra.close()
  })

  it('concurrent reads of one handle are all answered', async () => {
    const f = fakeFile(8 * 65536, 65536)
    const ra = new ReadAhead(f.open, 0, {window: 4 * 65536})
    const bufs = [0, 1, 2, 3].map(() => Buffer.alloc(65536))
    const ns = await Promise.all(bufs.map((b, i) => ra.read(b, 65536, i * 65536)))
    expect(ns).to.deep.equal([65536, 65536, 65536, 65536])
    bufs.forEach((b, i) => expectBytes(b, 65536, i * 65536))
    ra.close()
  })

  it('cannot serve a jump backwards or beyond what it asked for', async () => {
    const f = fakeFile(16 * 65536, 65536)
    const ra = new ReadAhead(f.open, 65536, {window: 2 * 65536})
    expect(await ra.read(Buffer.alloc(10), 10, 0)).to.equal(undefined)
    expect(await ra.read(Buffer.alloc(10), 10, 10 * 65536)).to.equal(undefined)
    ra.close()
    expect(f.opened.every(o => o.cancelled)).to.equal(true)
    expect(await ra.read(Buffer.alloc(10), 10, 65536)).to.equal(undefined)
  })

  it('an error from the server, silence, or stale data: the caller reads by itself', async () => {
    const failing = new ReadAhead(fakeFile(4 * 65536, 65536, {failAt: 65536}).open, 0, {window: 4 * 65536})
    const buf = Buffer.alloc(65536)
    expect(await failing.read(buf, 65536, 0)).to.equal(65536)
    expect(await failing.read(buf, 65536, 65536)).to.equal(undefined)
    const silent = new ReadAhead(fakeFile(65536, 65536, {silent: true}).open, 0, {silenceMs: 50})
    expect(await silent.read(buf, 10, 0)).to.equal(undefined)
    let now = 0
    const stale = new ReadAhead(fakeFile(4 * 65536, 65536).open, 0, {window: 4 * 65536, ttlMs: 1000, now: () => now})
    expect(await stale.read(buf, 10, 0)).to.equal(10)
    now = 1000
    expect(await stale.read(buf, 10, 10)).to.equal(undefined)
  })
})

describe('remote: streamed read-ahead, windows arriving interleaved', () => {
  it('keeps chunks in file order when two windows stream at once', async () => {
    const {ra, streams} = manualStreams(2 * 65536)
    const chunk = (offset: number) => piece(offset, 65536)

    await new Promise(r => setImmediate(r))
    streams[0].s.emit('data', chunk(0))
    const buf = Buffer.alloc(65536)
    expect(await ra.read(buf, 65536, 0)).to.equal(65536) // asks for the second window
    await new Promise(r => setImmediate(r))
    expect(streams.map(x => x.offset)).to.deep.equal([0, 2 * 65536])
    streams[1].s.emit('data', chunk(2 * 65536)) // the second window's first chunk comes first
    streams[0].s.emit('data', chunk(65536))
    expect(await ra.read(buf, 65536, 65536)).to.equal(65536)
    expectBytes(buf, 65536, 65536)
    expect(await ra.read(buf, 65536, 2 * 65536)).to.equal(65536)
    expectBytes(buf, 65536, 2 * 65536)
    ra.close()
  })
  it('answers a read only when all its bytes are here (a short count means the end of the file to FUSE)', async () => {
    const {ra, streams} = manualStreams(4 * 20_000)

    await new Promise(r => setImmediate(r))
    streams[0].s.emit('data', piece(0, 20_000))
    const buf = Buffer.alloc(50_000)
    let answered: number | undefined | 'not yet' = 'not yet'
    const first = ra.read(buf, 50_000, 0).then(n => (answered = n))
    await new Promise(r => setTimeout(r, 20))
    expect(answered, 'answered with the 20,000 bytes that had come').to.equal('not yet')
    streams[0].s.emit('data', piece(20_000, 20_000))
    await new Promise(r => setTimeout(r, 20))
    expect(answered).to.equal('not yet')
    streams[0].s.emit('data', piece(40_000, 20_000))
    expect(await first).to.equal(50_000)
    expectBytes(buf, 50_000, 0)
    // a read across into the next window waits for that window's stream
    streams[0].s.emit('data', piece(60_000, 20_000))
    streams[0].s.emit('end')
    const across = ra.read(buf, 30_000, 70_000)
    await new Promise(r => setImmediate(r))
    const next = streams.find(x => x.offset === 80_000)
    expect(next, 'the next window was asked for').to.not.equal(undefined)
    next!.s.emit('data', piece(80_000, 15_000))
    next!.s.emit('end') // the file ends at 95,000
    expect(await across).to.equal(25_000)
    expectBytes(buf, 25_000, 70_000)
    expect(await ra.read(buf, 30_000, 95_000)).to.equal(0)
    ra.close()
  })
})

describe('remote: streamed read-ahead, data in small pieces', () => {
  it('serves reads from many small pieces of two windows arriving interleaved, waiting readers included', async () => {
    const window = 64 * 1024
    const {ra, streams} = manualStreams(window)
    await new Promise(r => setImmediate(r))
    const sent = [0, 0] // bytes sent of window 0 and 1
    const feed = (w: number, n: number) => {
      const s = streams.find(x => x.offset === w * window)!
      const k = Math.min(n, window - sent[w])
      if (k > 0) s.s.emit('data', piece(w * window + sent[w], k))
      sent[w] += k
    }

    // a 50,000-byte read waits while pieces of 1,000 bytes trickle in
    const buf = Buffer.alloc(50_000)
    const first = ra.read(buf, 50_000, 0)
    for (let i = 0; i < 30; i++) {
      feed(0, 1000)
      await new Promise(r => setImmediate(r))
    }

    feed(0, 25_000)
    expect(await first).to.equal(50_000)
    expectBytes(buf, 50_000, 0)
    await new Promise(r => setImmediate(r))
    expect(streams.map(x => x.offset)).to.deep.equal([0, window]) // the second window was asked for
    // the second window's pieces come before the rest of the first one's
    while (sent[1] < window) feed(1, 777)
    while (sent[0] < window) feed(0, 333)
    let pos = 50_000
    for (const len of [4096, 131_072 - 54_096 - 1, 1]) {
      const b = Buffer.alloc(len)
      expect(await ra.read(b, len, pos)).to.equal(len)
      expectBytes(b, len, pos)
      pos += len
    }

    expect(pos).to.equal(2 * window)
    ra.close()
  })
})

describe('remote: streamed read-ahead, lent pieces', () => {
  it('gives each piece back only once the reader is TRAIL past it (its bytes overwritten then), and the rest on close', async () => {
    const size = 12 * 262_144
    const released: Array<{offset: number; at: number}> = []
    let furthest = 0
    const opened: Array<{offset: number; s: EventEmitter & {cancel(): void}}> = []
    const ra = new ReadAhead(async (offset, length) => {
      const s = Object.assign(new EventEmitter(), {cancel: () => {}})
      opened.push({offset, s})
      setImmediate(() => {
        for (let pos = offset; pos < Math.min(size, offset + length); pos += 262_144) {
          const {data} = piece(pos, 262_144)
          s.emit('data', {data, release: (d: Buffer) => {
            expect(d).to.equal(data)
            released.push({offset: pos, at: furthest}) // (during the read from `furthest`)
            d.fill(0xEE) // as the next frame received into the buffer would
          }})
        }
        s.emit('end')
      })
      return s
    }, 0, {window: 1024 * 1024})
    const buf = Buffer.alloc(131_072)
    for (let pos = 0; pos < size;) {
      const n = await ra.read(buf, buf.length, pos)
      expect(n).to.equal(131_072)
      expectBytes(buf, n!, pos)
      pos += n!
      furthest = pos
    }

    expect(released.length).to.be.greaterThan(0)
    for (const r of released) expect(r.offset + 262_144 <= r.at + buf.length - TRAIL, `piece at ${r.offset} given back at ${r.at}`).to.equal(true)
    const before = released.length
    ra.close()
    expect(released.length, 'the pieces kept are given back on close').to.be.greaterThan(before)
    expect(new Set(released.map(r => r.offset)).size).to.equal(released.length) // each once
    // a piece arriving after close is given back at once
    let late = 0
    opened[0].s.emit('data', {data: Buffer.alloc(10), release: () => late++})
    expect(late).to.equal(1)
  })
})
