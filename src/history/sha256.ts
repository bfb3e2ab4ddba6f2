/**
 * SHA-256 of the history store's chunks on the libuv thread pool (native
 * sha256Job), so that several chunks hash at once, on every core, while the
 * event loop serves the mount.
 *
 * A version's digest is one sequential SHA-256 over all its bytes, which no
 * number of cores speeds up — unless the hash state between chunks is known.
 * SHA-256 processes 64-byte blocks, each updating an 8-word state; a chunk
 * (256 KiB, a whole number of blocks) takes the state before it to the state
 * after it. The store keeps those states (marks: `history/marks/`), so each
 * chunk's step can be checked on its own, all at once: if chunk 0 takes the
 * initial state to mark 0, chunk i takes mark i-1 to mark i, and the last
 * chunk finishes mark n-2 into the digest, then the chunks hash to the digest
 * exactly as a sequential pass would have computed it (the same computation,
 * step by step). Marks need no protection: a wrong mark fails its step, and
 * the reader then falls back to one sequential pass.
 */
import {sys} from '../volume/sys.js'

const HASH = 1
const STEP = 2
const FINISH = 4
const NOW = 8

/** A state between 64-byte blocks (32 bytes), or null: the initial state. */
export type ChainState = Buffer | null

/** The SHA-256 of `data`, hex, computed on the thread pool. `data` must not change until it resolves. */
export async function hashChunk(data: Buffer): Promise<string> {
  const out = Buffer.allocUnsafe(64)
  await sys.sha256Job(data, HASH, null, 0, out)
  return out.toString('hex', 0, 32)
}

export interface Step {
  /** the chunk's own SHA-256, hex (when asked for) */
  hash?: string
  /** the state after the chunk (32 bytes), or the digest (hex) when `last` */
  after: Buffer
}

/**
 * One chunk's step of the version's hash: from `before` (the state after
 * `offset` bytes) through `data`; with `last`, finished into the digest
 * (`after` then holds the 32 digest bytes). With `hash`, the chunk's own
 * hash too, from the same bytes in the same job.
 */
export async function step(data: Buffer, before: ChainState, offset: number, last: boolean, hash = false): Promise<Step> {
  const out = Buffer.allocUnsafe(64)
  await sys.sha256Job(data, (hash ? HASH : 0) | STEP | (last ? FINISH : 0), before, offset, out)
  return {hash: hash ? out.toString('hex', 0, 32) : undefined, after: out.subarray(32, 64)}
}

/** A chunk file read and hashed in one job (readStep): what was read, and the hashes if all of it was. */
export interface ReadStep {
  /** bytes the file held (at most buf.length) */
  got: number
  /** the chunk's own hash (with `hash`), only when got === want */
  hash?: string
  /** with a chain step, only when got === want: as Step.after */
  after?: Buffer
}

/**
 * Reads the file `path` into `buf` (which must be longer than `want`: a
 * longer file shows as got > want) and, if it held exactly `want` bytes,
 * hashes them: its own hash (`hash`) and/or its step of a version's hash
 * (`chain`: from `before` at `offset`, finished with `last`). One job on the
 * pool instead of an open, a read, a close and a hash. Rejects with the
 * errno code of a file that cannot be opened or read.
 */
export async function readStep(path: string, buf: Buffer, want: number, opts: {hash: boolean; chain?: {before: ChainState; offset: number; last: boolean}}): Promise<ReadStep> {
  const out = Buffer.allocUnsafe(64)
  const {chain} = opts
  const flags = (opts.hash ? HASH : 0) | (chain ? STEP | (chain.last ? FINISH : 0) : 0)
  const got = await sys.sha256Job(buf, flags, chain?.before ?? null, chain?.offset ?? 0, out, path, want)
  if (got !== want) return {got}
  return {got, hash: opts.hash ? out.toString('hex', 0, 32) : undefined, after: chain ? out.subarray(32, 64) : undefined}
}

/**
 * step() on the calling thread, now (no hash of the chunk's own): for bytes
 * hashed as they stream by, where a trip through the pool per piece, one
 * after the other, would wait on the pool more than it hashes.
 */
export function stepNow(data: Buffer, before: ChainState, offset: number, last: boolean): Buffer {
  const out = Buffer.allocUnsafe(64)
  void sys.sha256Job(data, STEP | (last ? FINISH : 0) | NOW, before, offset, out)
  return out.subarray(32, 64)
}
