/**
 * Reading stored versions quickly without checking less.
 *
 * What it costs, measured (bench/README.md): SHA-256 runs at about 1.4 GB/s
 * per core here, and a fresh 256 KiB buffer per chunk cost about as much
 * again (the kernel hands out and zeroes new pages on every allocation). So
 * chunks are read into a few buffers that are reused, several at once on the
 * libuv thread pool, in order; each chunk's hash runs on the pool too
 * (sha256.ts), several at once; and a version read whole is hashed once,
 * against the record's digest: on every core when the store has its marks
 * (each chunk's step of the digest checked on its own), else in one
 * sequential pass on the caller's thread (see pipeVersion).
 */
import {createHash} from 'node:crypto'
import fs from 'node:fs'
import {promisify} from 'node:util'
import {readStep} from './sha256.js'
import {HistoryError, HistoryStore, type Manifest} from './store.js'

const open = promisify(fs.open)
const read = promisify(fs.read)
const close = promisify(fs.close)

/** Chunks a whole-version read keeps in flight (read, hashed or being consumed): 4 MiB. */
export const PIPE_SLOTS = 16
/** Chunks the mount's history view reads ahead of a sequential reader: 2 MiB. */
export const READ_AHEAD = 8

const tampered = (m: Manifest, i: number) =>
  new HistoryError('history-tampered', `chunk ${i} (${m.chunks[i]}) of version ${m.digest} does not match its hash: the history store was altered`)

/** Reads chunk i of m into buf (at least its length + 1 bytes); checks only its length. */
async function readInto(store: HistoryStore, m: Manifest, i: number, buf: Buffer): Promise<Buffer> {
  const want = HistoryStore.chunkLength(m, i)
  let fd: number
  try {
    fd = await open(store.chunkPath(m.chunks[i]), 'r')
  } catch {
    throw new HistoryError('history-missing', `chunk ${i} (${m.chunks[i]}) of version ${m.digest} is missing from the history store`)
  }

  try {
    // one byte more than expected: a longer file is caught without a stat, and a short read of a regular
    // file is its end (as readSmall in store.ts)
    const got = (await read(fd, buf, 0, want + 1, 0)).bytesRead
    if (got !== want) throw tampered(m, i)
    return buf.subarray(0, want)
  } finally {
    await close(fd)
  }
}

/** A version's marks did not describe its bytes (they are not protected): the digest is checked in one pass instead. */
class MarksMismatch extends Error {
  constructor(readonly chunk: number) {
    super(`chunk ${chunk}'s step does not reach its mark`)
  }
}

const MISSING = new Set(['ENOENT', 'ENOTDIR', 'EACCES', 'EISDIR'])

/**
 * Chunk i of m read into buf and checked, in one job on the pool: against its
 * own hash (`chunks`) and/or, with the version's marks, by its step of the
 * version's hash from mark i-1 (the initial state for chunk 0) to mark i (the
 * digest for the last chunk). Without either, only its length is checked.
 */
async function readChecked(store: HistoryStore, m: Manifest, i: number, buf: Buffer, chunks: boolean, marks?: Buffer): Promise<Buffer> {
  if (!chunks && !marks) return readInto(store, m, i, buf)
  const want = HistoryStore.chunkLength(m, i)
  const last = i === m.chunks.length - 1
  let r
  try {
    r = await readStep(store.chunkPath(m.chunks[i]), buf, want,
      {hash: chunks, chain: marks ? {before: i === 0 ? null : marks.subarray((i - 1) * 32, i * 32), offset: i * m.chunkSize, last} : undefined})
  } catch (error) {
    if (!MISSING.has((error as NodeJS.ErrnoException).code ?? '')) throw error
    throw new HistoryError('history-missing', `chunk ${i} (${m.chunks[i]}) of version ${m.digest} is missing from the history store`)
  }

  if (r.got !== want || (chunks && r.hash !== m.chunks[i])) throw tampered(m, i)
  if (marks && !r.after!.equals(last ? Buffer.from(m.digest, 'hex') : marks.subarray(i * 32, (i + 1) * 32))) throw new MarksMismatch(i)
  return buf.subarray(0, want)
}

export interface PipeOptions {
  /**
   * Check the bytes against the version's digest (the record's). The last
   * chunk is handed to `sink` only once they match. On a mismatch the chunks
   * are checked one by one, so the error names the altered chunk.
   */
  whole: boolean
  /** Check each chunk against its hash before it is handed out. */
  chunks: boolean
  /**
   * Receives the chunks in order, with their offsets. `data` is a reused
   * buffer: valid until the returned promise settles. Several calls may be
   * outstanding at once.
   */
  sink?: (data: Buffer, pos: number) => Promise<void>
  /**
   * The sink writes each chunk at its offset, so receiving chunks again is
   * harmless. Either way the digest is checked on every core when the
   * version has marks; if they turn out not to describe the bytes, a
   * positional sink receives the version again from its start, one that
   * appends (stdout, a network stream) only the chunks it has not received.
   */
  positional?: boolean
  slots?: number
  /**
   * Bytes left free before each chunk's data in its buffer (`data.byteOffset`
   * is at least this much into `data.buffer`), where the sink may write a
   * header and send header and data as one message without copying them.
   */
  headroom?: number
}

/**
 * Reads version `m` from its start, with up to `slots` chunks in flight
 * between the disk and the sink. Throws HistoryError if a check fails (the
 * sink has then received only chunks before the failing one, and never the
 * last chunk of a version that does not match its digest).
 *
 * A whole-content check alone is as strong as checking every chunk too: any
 * byte that differs from the version changes the digest. Chunk hashes matter
 * where bytes are handed out before the whole was seen (a random-access or
 * second read against a proven chunk list, see proveManifest).
 *
 * With the version's marks, the whole is checked step by step on the pool;
 * a step that does not reach its mark means the marks are wrong or the
 * bytes are, and the version is then read again with the sequential check,
 * whose error names what is wrong (see `positional` for what the sink then
 * receives).
 */
export async function pipeVersion(store: HistoryStore, m: Manifest, opts: PipeOptions): Promise<void> {
  const marks = opts.whole ? await store.marks(m) : undefined
  if (marks) {
    try {
      return await pipe(store, m, opts, marks)
    } catch (error) {
      if (!(error instanceof MarksMismatch)) throw error
      // the sink has received exactly the chunks before the one whose step failed (in order, each awaited
      // first): one that appends gets the rest, after those are read and hashed again for the sequential pass
      if (opts.sink && !opts.positional) return pipe(store, m, opts, undefined, error.chunk)
    }
  }

  return pipe(store, m, opts)
}

/** Bytes of chunk buffers kept between reads of whole versions (a fresh buffer costs a page fault per 4 KiB and GC pressure). */
export const SPARE_BYTES = 32 * 1024 * 1024
const spare = new Map<number, Buffer[]>()
let spareBytes = 0

function takeBuffers(count: number, size: number): Buffer[] {
  const kept = spare.get(size) ?? []
  const out = kept.splice(Math.max(0, kept.length - count))
  spareBytes -= out.length * size
  while (out.length < count) out.push(Buffer.allocUnsafeSlow(size))
  return out
}

function giveBack(buffers: Buffer[]): void {
  for (const b of buffers) {
    if (spareBytes + b.length > SPARE_BYTES) return
    const list = spare.get(b.length) ?? []
    spare.set(b.length, list)
    list.push(b)
    spareBytes += b.length
  }
}

/** `handedOut`: chunks before it are read and checked but not given to the sink (it has them). */
async function pipe(store: HistoryStore, m: Manifest, opts: PipeOptions, marks?: Buffer, handedOut = 0): Promise<void> {
  const n = m.chunks.length
  const room = opts.headroom ?? 0
  const buffers = takeBuffers(Math.min(opts.slots ?? PIPE_SLOTS, n), room + m.chunkSize + 1)
  const free: Buffer[] = buffers.map(b => b.subarray(room))
  const reads = new Map<number, {slot: Buffer; data: Promise<Buffer>}>()
  let started = 0
  let ended = false
  const pump = () => {
    while (!ended && free.length > 0 && started < n) {
      const i = started++
      const slot = free.pop()!
      const data = readChecked(store, m, i, slot, opts.chunks, marks)
      data.catch(() => {}) // surfaced in its turn
      reads.set(i, {slot, data})
    }
  }

  const whole = opts.whole && !marks ? createHash('sha256') : undefined
  const sinks = new Set<Promise<void>>()
  let sinkError: unknown
  pump()
  try {
    for (let i = 0; i < n; i++) {
      // every buffer may be waiting on the sink: chunk i is read once one is back
      while (!reads.has(i) && !sinkError) await Promise.race(sinks)
      if (sinkError) throw sinkError
      const {slot, data: pending} = reads.get(i)!
      reads.delete(i)
      const data = await pending // read and checked (chunk hash, step): see pump
      whole?.update(data)
      if (whole && i === n - 1 && whole.digest('hex') !== m.digest) throw locate(store, m)
      if (opts.sink && i >= handedOut) {
        const s: Promise<void> = opts.sink(data, i * m.chunkSize).then(() => {
          sinks.delete(s)
          free.push(slot)
          pump()
        }, (error: unknown) => {
          sinks.delete(s)
          sinkError ??= error
        })
        sinks.add(s)
      } else {
        free.push(slot)
        pump()
      }
    }

    await Promise.all(sinks)
    if (sinkError) throw sinkError
  } finally {
    // no new read from here on: a sink that settles while the ones below are awaited would start one
    // into a buffer that is then given back (a failed marked pass's buffers are the sequential pass's next)
    ended = true
    await Promise.allSettled([...[...reads.values()].map(r => r.data), ...sinks])
    giveBack(buffers) // every read and sink using them has settled
  }
}

/** The error for a version whose bytes do not hash to its digest: the altered chunk if one is found. */
function locate(store: HistoryStore, m: Manifest): HistoryError {
  const problem = store.check(m.digest)
  if (problem) return new HistoryError(problem.kind, problem.detail)
  return new HistoryError('history-tampered', `version ${m.digest} does not reassemble to its digest: the history store was altered`)
}

/**
 * Checks a version (each chunk against its hash, the whole against the
 * digest, from the same bytes) and returns its manifest: a chunk list proven
 * to describe `digest`. A reader that checks each chunk it returns against
 * this list returns only bytes of that version.
 */
export async function proveManifest(store: HistoryStore, digest: string): Promise<Manifest> {
  const m = store.manifest(digest)
  await pipeVersion(store, m, {whole: true, chunks: true})
  return m
}

/**
 * A version whose chunks can be checked one at a time: against `m`'s chunk
 * list, proven to describe its digest; or, with `marks`, each chunk by its
 * step of the digest, from proven mark i-1 to proven mark i (then the chunk
 * list is only where to find the bytes). A step check is as strong as a
 * chunk hash: other bytes of the same length that took mark i-1 to mark i
 * would give two versions with the same digest, a SHA-256 collision.
 */
export interface ProvenVersion {
  m: Manifest
  marks?: Buffer
}

/**
 * Proves a version for reading chunk by chunk, reading it whole once: with
 * its marks, each chunk's step is checked on the pool, every core at once
 * (one hash per byte); without (or if they are wrong), proveManifest.
 */
export async function proveVersion(store: HistoryStore, digest: string): Promise<ProvenVersion> {
  const m = store.manifest(digest)
  const marks = await store.marks(m)
  if (marks) {
    try {
      await pipe(store, m, {whole: true, chunks: false}, marks)
      return {m, marks}
    } catch (error) {
      if (!(error instanceof MarksMismatch)) throw error
    }
  }

  await pipe(store, m, {whole: true, chunks: true})
  return {m}
}

/**
 * Reads a proven version from its start into `sink`, in order, each chunk
 * checked before it is handed out: against the proven chunk list, or by its
 * step between the proven marks (one hash per byte either way, on the pool).
 */
export async function pipeProven(store: HistoryStore, v: ProvenVersion, sink: (data: Buffer, pos: number) => Promise<void>): Promise<void> {
  try {
    await pipe(store, v.m, {whole: false, chunks: !v.marks, sink}, v.marks)
  } catch (error) {
    throw error instanceof MarksMismatch ? tampered(v.m, error.chunk) : error
  }
}

interface Slot {
  buf: Buffer
  key?: string
  ready?: Promise<Buffer>
  /** readers (and loads) using it: it is not reused while > 0 */
  pins: number
}

/**
 * Recently read chunks, checked, for random-access readers (the mount's
 * history view): at most `max` buffers of one chunk, reused (least recently
 * used first, never while a read uses it), keyed by chunk hash and length.
 * Hashing runs on the thread pool, several chunks at once.
 */
export class ChunkCache {
  private readonly byKey = new Map<string, Slot>() // least recently used first
  private readonly spare: Slot[] = []
  private slots = 0

  constructor(private readonly store: HistoryStore, private readonly max = 32) {}

  /** Runs use() with chunk i of v, checked; the bytes are valid only during use(). */
  async with<T>(v: ProvenVersion, i: number, use: (data: Buffer) => T): Promise<T> {
    const slot = this.acquire(v, i)
    try {
      return use(await slot.ready!)
    } finally {
      slot.pins--
    }
  }

  /** Starts loading chunks from..to-1 of v while buffers are free; errors surface when they are read. */
  prefetch(v: ProvenVersion, from: number, to: number): void {
    for (let i = from; i < Math.min(to, v.m.chunks.length); i++) {
      if (this.byKey.has(key(v, i))) continue
      if (this.spare.length === 0 && this.slots >= this.max && !this.reusable()) return
      const slot = this.acquire(v, i)
      slot.ready!.then(() => slot.pins--, () => slot.pins--)
    }
  }

  private reusable(): Slot | undefined {
    for (const s of this.byKey.values()) if (s.pins === 0) return s
    return undefined
  }

  /** Chunk i of v, read into buf and checked: against the chunk list, or by its step between proven marks. */
  private load(v: ProvenVersion, i: number, buf: Buffer): Promise<Buffer> {
    const {m, marks} = v
    return readChecked(this.store, m, i, buf, !marks, marks).catch((error: unknown) => {
      throw error instanceof MarksMismatch ? tampered(m, error.chunk) : error
    })
  }

  private acquire(v: ProvenVersion, i: number): Slot {
    const {m} = v
    const k = key(v, i)
    let slot = this.byKey.get(k)
    if (slot) {
      this.byKey.delete(k)
      this.byKey.set(k, slot)
      slot.pins++
      return slot
    }

    slot = this.spare.pop()
    if (!slot && this.slots < this.max) {
      slot = {buf: Buffer.allocUnsafeSlow(m.chunkSize + 1), pins: 0}
      this.slots++
    }

    if (!slot) {
      slot = this.reusable()
      if (slot) this.byKey.delete(slot.key!)
    }

    if (!slot) {
      // every buffer is in use: one more for this read only, not kept in the cache
      const extra: Slot = {buf: Buffer.allocUnsafeSlow(m.chunkSize + 1), pins: 1}
      extra.ready = this.load(v, i, extra.buf)
      return extra
    }

    const s = slot
    s.key = k
    s.pins++ // a slot whose load failed may still have readers about to let go
    s.ready = this.load(v, i, s.buf)
    s.ready.catch(() => {
      // a failure is not kept: the next read tries again
      if (this.byKey.get(k) === s) {
        this.byKey.delete(k)
        s.key = undefined
        this.spare.push(s)
      }
    })
    this.byKey.set(k, s)
    return s
  }
}

/**
 * A chunk checked against a proven chunk list is that chunk wherever it is
 * listed; one checked by its step is only known to be chunk i of that
 * version (the list that named its file was not proven).
 */
const key = ({m, marks}: ProvenVersion, i: number) => (marks ? `${m.digest}#${i}` : `${m.chunks[i]}:${HistoryStore.chunkLength(m, i)}`)
