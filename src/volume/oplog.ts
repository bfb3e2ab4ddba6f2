/**
 * The op log: creates and unlinks the FUSE binding made on its own threads
 * and answered before the volume journaled their records (patches/:
 * fastcreate.h). The binding appends each one here before it touches the
 * disk, so a kill -9 cannot lose an answered one, and the entry doubles as
 * the crash intent.
 * The volume journals the record afterwards and notes the entry's number in
 * the journal (meta 'oplog') in the same transaction. A mount after a crash
 * journals the entries beyond that number (recoverOpLog), then empties the
 * log; verify and log refuse a volume whose log is ahead of its journal while
 * no mount holds it (checkOpLog).
 *
 * Entry (little-endian): "PFO1", u32 length of the rest, u32 crc32 of the
 * rest, then u64 seq, u64 at (ms since the epoch), u32 uid, u32 gid, i32 pid
 * (the caller), u8 op (2 = create, 3 = unlink), u32 mode, u32 owner uid,
 * u32 owner gid, u32 open flags (these four 0 for an unlink), u32 path
 * length, path bytes, and optionally (entries written by OpLogWriter for a
 * served volume; never by the binding) the member the operation ran for, as
 * UTF-8 up to the entry's end, so a recovered record names the same member
 * as a live one. The scan ends at the first
 * entry that does not check out or whose number is not above the one before
 * (the binding starts again at offset 0 once everything is journaled, so
 * older entries may follow; a failed operation spoils its entry's magic).
 */
import fs from 'node:fs'
import zlib from 'node:zlib'
import {PacioError} from '../errors.js'
import {EMPTY_DIGEST} from './content.js'
import type {RecordBody} from './recorder.js'
import type {Caller} from './types.js'

const MAGIC = 0x314f4650 // "PFO1"
const FIXED = 49
/** Bytes of an entry's member at most */
const MAX_MEMBER = 256
const OPS: Record<number, 'create' | 'unlink'> = {2: 'create', 3: 'unlink'}
const CODES = {create: 2, unlink: 3}
/** The kernel stamps ctime with a coarse clock: allow it to lag the entry's time by this much. */
const CLOCK_SLACK_MS = 50

export interface OpLogEntry {
  seq: number
  at: number
  op: 'create' | 'unlink'
  path: string
  who: Caller
  mode: number
  uid: number
  gid: number
  flags: number
  /** the member it ran for (absent: the volume's own user) */
  member?: string
}

/** Encodes one entry as the binding does (OpLogWriter's, and tests'). */
export function encodeOpLogEntry(e: OpLogEntry): Buffer {
  const p = Buffer.from(e.path, 'utf8')
  const m = Buffer.from(e.member ?? '', 'utf8')
  const body = Buffer.alloc(FIXED + p.length + m.length)
  body.writeBigUInt64LE(BigInt(e.seq), 0)
  body.writeBigUInt64LE(BigInt(e.at), 8)
  body.writeUInt32LE(e.who.uid, 16)
  body.writeUInt32LE(e.who.gid, 20)
  body.writeInt32LE(e.who.pid, 24)
  body[28] = CODES[e.op]
  body.writeUInt32LE(e.mode, 29)
  body.writeUInt32LE(e.uid, 33)
  body.writeUInt32LE(e.gid, 37)
  body.writeUInt32LE(e.flags >>> 0, 41)
  body.writeUInt32LE(p.length, 45)
  p.copy(body, FIXED)
  m.copy(body, FIXED + p.length)
  const head = Buffer.alloc(12)
  head.writeUInt32LE(MAGIC, 0)
  head.writeUInt32LE(body.length, 4)
  head.writeUInt32LE(zlib.crc32(body), 8)
  return Buffer.concat([head, body])
}

/** The entries of an op log's bytes, in order, up to the first that does not check out. */
export function parseOpLog(buf: Buffer): OpLogEntry[] {
  const out: OpLogEntry[] = []
  let off = 0
  let last = -1
  while (off + 12 <= buf.length && buf.readUInt32LE(off) === MAGIC) {
    const len = buf.readUInt32LE(off + 4)
    if (len < FIXED || off + 12 + len > buf.length) break
    const body = buf.subarray(off + 12, off + 12 + len)
    if (zlib.crc32(body) !== buf.readUInt32LE(off + 8)) break
    const seq = Number(body.readBigUInt64LE(0))
    const pathLen = body.readUInt32LE(45)
    if (pathLen > len) break
    const op = OPS[body[28]]
    if (op === undefined || FIXED + pathLen > len || len - FIXED - pathLen > MAX_MEMBER || seq <= last) break
    const member = len > FIXED + pathLen ? body.subarray(FIXED + pathLen).toString('utf8') : undefined
    out.push({
      seq, at: Number(body.readBigUInt64LE(8)), op, path: body.subarray(FIXED, FIXED + pathLen).toString('utf8'),
      who: {uid: body.readUInt32LE(16), gid: body.readUInt32LE(20), pid: body.readInt32LE(24)},
      mode: body.readUInt32LE(29), uid: body.readUInt32LE(33), gid: body.readUInt32LE(37), flags: body.readUInt32LE(41),
      ...(member === undefined ? {} : {member}),
    })
    last = seq
    off += 12 + len
  }

  return out
}

/**
 * The record of an operation the binding made (a create of a new, empty file
 * open for writing, or an unlink): the same whether the volume journals it
 * live or a mount journals it from the op log after a crash.
 */
export function opLogRecord(op: 'create' | 'unlink', path: string, owner?: {mode: number; uid: number; gid: number}): RecordBody {
  if (op === 'unlink') return {op, path}
  const {mode, uid, gid} = owner!
  return {op, path, type: 'file', mode, uid, gid, size: 0, digest: EMPTY_DIGEST, writing: true}
}

/**
 * The op log written from JS, for a volume whose creates and unlinks are not
 * made by the binding (a served volume): the same entries, the same rules.
 * `log` writes the entry where the next one goes (a pwrite: in the page
 * cache, so it survives kill -9) before the operation touches the disk; the
 * operation then calls `made` (the entry stands, the next one follows it) or
 * `failed` (its magic is spoilt and the next entry overwrites it). Once the
 * journal has every entry written (`journaled`), the next entry starts again
 * at offset 0, as the binding's do.
 */
export class OpLogWriter {
  private off = 0
  private pending?: {seq: number; length: number}

  constructor(private readonly fd: number, private seq: number) {}

  /** Writes the entry of an operation about to be made (its number is assigned here). */
  log(e: Omit<OpLogEntry, 'seq'>): number {
    if (this.pending) throw new Error('op log: an entry is still waiting for made() or failed()')
    const entry = encodeOpLogEntry({...e, seq: this.seq})
    let done = 0
    while (done < entry.length) done += fs.writeSync(this.fd, entry, done, entry.length - done, this.off + done)
    this.pending = {seq: this.seq, length: entry.length}
    return this.seq
  }

  /** The logged operation happened. */
  made(): void {
    this.off += this.pending!.length
    this.seq++
    this.pending = undefined
  }

  /** The logged operation did not happen: its entry must not be replayed. */
  failed(): void {
    this.pending = undefined
    try {
      fs.writeSync(this.fd, Buffer.alloc(4), 0, 4, this.off)
    } catch { /* a recovery replays the last entry only if its operation happened on disk */ }
  }

  /** The journal holds every entry up to `seq`: if that is the last, the log starts again at its beginning. */
  journaled(seq: number): void {
    if (!this.pending && seq >= this.seq - 1) this.off = 0
  }
}

/** What recovery needs of the journal and the recorder. */
export interface OpLogSink {
  /** Highest op log number journaled (-1: none). */
  journaled(): number
  /** Journals the entry's record (with its number, in the same transaction). */
  record(e: OpLogEntry): Promise<void>
}

function readLog(file: string): Buffer {
  try {
    return fs.readFileSync(file)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return Buffer.alloc(0)
    throw error
  }
}

/** Entries of the log at `file` beyond the journaled number. */
export function pendingOpLog(file: string, journaled: number): OpLogEntry[] {
  return parseOpLog(readLog(file)).filter(e => e.seq > journaled)
}

/**
 * Did the operation of this entry happen on disk? Only the last entry can name
 * one that did not (the binding writes the entry first and holds its lock
 * until the disk has changed): a create made a regular file at the path,
 * changed no earlier than the entry; an unlink left nothing there.
 */
function madeOnDisk(root: string, e: OpLogEntry): boolean {
  let st: fs.Stats
  try {
    st = fs.lstatSync(root + e.path)
  } catch {
    return e.op === 'unlink'
  }

  return e.op === 'create' && st.isFile() && st.ctimeMs >= e.at - CLOCK_SLACK_MS
}

/**
 * Opens (creating) the op log at `file`, journals the entries a crash left
 * beyond the journaled number (the last one only if its file is on disk
 * under `root`), empties it, and returns its fd (for the binding) and the
 * number its next entry takes.
 */
export async function recoverOpLog(file: string, root: string, sink: OpLogSink): Promise<{fd: number; nextSeq: number; recovered: number; skipped: number}> {
  const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600)
  try {
    const mark = sink.journaled()
    const entries = parseOpLog(readLog(file))
    let next = mark + 1
    let recovered = 0
    let skipped = 0
    for (const [i, e] of entries.entries()) {
      next = Math.max(next, e.seq + 1)
      if (e.seq <= mark) continue
      if (i === entries.length - 1 && !madeOnDisk(root, e)) {
        skipped++
        continue
      }

      await sink.record(e)
      recovered++
    }

    fs.ftruncateSync(fd, 0)
    fs.fsyncSync(fd)
    return {fd, nextSeq: next, recovered, skipped}
  } catch (error) {
    fs.closeSync(fd)
    throw error
  }
}

/**
 * For readers of a volume (verify, log): refuses one whose op log holds
 * answered creates the journal lacks (a mount was killed) while no process
 * holds the volume, since what they report would miss them.
 */
export function checkOpLog(file: string, journaled: number, locked: boolean): void {
  if (locked) return // a live mount journals them itself
  const pending = pendingOpLog(file, journaled)
  if (pending.length === 0) return
  throw new PacioError('EBUSY', `${file} holds ${pending.length} operation(s) made before a crash and not yet in the journal (first: ${pending[0].op} ${pending[0].path})`,
    {suggestion: 'mount the volume once (paciofs mount) so that it journals them, then run this again'})
}
