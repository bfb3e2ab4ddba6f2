/**
 * `paciofs history` and `paciofs cat`: the versions of a path (following
 * renames) and the content of the version current at an epoch, read-only
 * (also while the volume is mounted). Content is returned only after its
 * bytes match the digest of a record that matches its hash on the ledger.
 */
import fs from 'node:fs'
import type {Writable} from 'node:stream'
import {promisify} from 'node:util'
import {PacioError} from '../errors.js'
import {HistoryError, HistoryStore, type HistoryStats} from '../history/store.js'
import {pipeProven, pipeVersion, proveVersion} from '../history/reader.js'
import {readTimeline, treeAt, type Timeline, type TimelineEntry} from '../history/timeline.js'
import {openVolumeLedger} from './ledger.js'
import {layoutOf, readMeta} from '../volume/layout.js'
import {normalize} from '../volume/paths.js'

export type VersionOp = 'created' | 'modified' | 'renamed' | 'linked' | 'deleted' | 'record-tampered'

export interface VersionEvent {
  epoch: number
  time: number // block time, ms
  txid: string
  author?: {uid: number; gid: number; member: string}
  op: VersionOp
  /** the entry's name at this event (after it, for a rename) */
  path: string
  from?: string
  to?: string
  type?: string
  /** content after the event (files) */
  size?: number
  digest?: string
  /** the version is in the history store (files with a digest) */
  stored?: boolean
  /** the empty file this version was written into existed from this epoch (created or truncated, then written) */
  since?: number
  detail?: string
}

/** Parses an epoch given on the command line: a whole number >= 0. */
export function parseEpoch(raw: string | number | undefined, name = '--at'): number | undefined {
  if (raw === undefined) return undefined
  const s = String(raw).trim()
  if (!/^\d+$/.test(s) || !Number.isSafeInteger(Number(s))) throw new PacioError('EINPUT', `${name} must be a block epoch (a whole number >= 0), got ${JSON.stringify(String(raw))}`)
  return Number(s)
}

function volPath(p: string): string {
  try {
    return normalize(p.startsWith('/') ? p : `/${p}`)
  } catch (error) {
    throw new PacioError('EINPUT', `not a volume path: ${JSON.stringify(p)} (${(error as Error).message})`)
  }
}

interface Lineage {
  names: Set<string> // every name it ever had
  type?: string
  size?: number
  digest?: string
  events: Array<VersionEvent & {order: number}>
}

/** Every entry's life, replayed in ledger order; returns the lives that ever had the name `path`. */
function lineagesOf(t: Timeline, path: string, store: HistoryStore | undefined): Array<VersionEvent & {order: number}> {
  const current = new Map<string, Lineage>()
  const matched = new Set<Lineage>()
  const tampered: Array<VersionEvent & {order: number}> = []
  const stored = (d?: string) => (d === undefined || !store ? undefined : store.has(d))
  t.entries.forEach((e: TimelineEntry, order) => {
    const r = e.record
    if (!e.trusted || !r) {
      if (e.path === path || e.to === path) tampered.push({order, epoch: e.epoch, time: e.time, txid: e.txid, op: 'record-tampered', path,
        detail: 'this record does not match its salted hash on the ledger (or the journal has none): it is not trusted'})
      return
    }

    const base = {epoch: e.epoch, time: e.time, txid: e.txid, author: {uid: r.who.uid, gid: r.who.gid, member: r.who.member}}
    const push = (l: Lineage, ev: Omit<VersionEvent, keyof typeof base>) => {
      l.events.push({order, ...base, type: l.type, size: l.size, digest: l.digest, stored: l.type === 'file' ? stored(l.digest) : undefined, ...ev})
      if (l.names.has(path)) matched.add(l)
    }

    switch (r.op) {
      case 'create': case 'mknod': case 'mkdir': case 'symlink': {
        const l: Lineage = {names: new Set([r.path]), type: r.type ?? 'file', size: r.size, digest: r.digest, events: []}
        current.set(r.path, l)
        push(l, {op: 'created', path: r.path})
        break
      }

      case 'write': case 'truncate': {
        const l = current.get(r.path)
        if (!l) break
        l.size = r.size
        l.digest = r.digest
        push(l, {op: 'modified', path: r.path, detail: r.op === 'truncate' ? `truncated to ${r.size}` : undefined})
        break
      }

      case 'link': {
        const l = current.get(r.path)
        if (!l || !r.to) break
        current.set(r.to, l)
        l.names.add(r.to)
        push(l, {op: 'linked', path: r.to, from: r.path, to: r.to})
        break
      }

      case 'unlink': case 'rmdir': {
        const l = current.get(r.path)
        if (!l) break
        current.delete(r.path)
        push(l, {op: 'deleted', path: r.path})
        break
      }

      case 'rename': {
        const to = r.to
        if (!to || to === r.path) break
        const replaced = current.get(to)
        const moving = [...current].filter(([p]) => p === r.path || p.startsWith(r.path + '/'))
        if (replaced && !moving.some(([, l]) => l === replaced)) {
          current.delete(to)
          push(replaced, {op: 'deleted', path: to, detail: `replaced by ${r.path}`})
        }

        for (const [p] of moving) current.delete(p)
        for (const [p, l] of moving) {
          const np = to + p.slice(r.path.length)
          current.set(np, l)
          l.names.add(np)
          push(l, {op: 'renamed', path: np, from: p, to: np})
        }

        break
      }

      default:
        break
    }
  })

  const events = [...matched].flatMap(l => squash(l.events))
  events.push(...tampered)
  return events.sort((a, b) => a.order - b.order)
}

/**
 * A writer's session shows as one version: an empty file (just created, or
 * truncated by an O_TRUNC open) that the same user then writes is reported at
 * the epoch its content was committed, with `since` the epoch it became empty.
 */
function squash(events: Array<VersionEvent & {order: number}>): Array<VersionEvent & {order: number}> {
  const out: Array<VersionEvent & {order: number}> = []
  for (const ev of events) {
    const prev = out.at(-1)
    if (prev && ev.op === 'modified' && !ev.detail && (prev.op === 'created' || prev.op === 'modified') && prev.size === 0 &&
      prev.path === ev.path && prev.author?.uid === ev.author?.uid) {
      out[out.length - 1] = {...ev, op: prev.op, since: prev.since ?? prev.epoch}
      continue
    }

    out.push(ev)
  }

  return out
}

/** The timeline, read through the volume's own ledger driver. */
async function timelineOf(layout: ReturnType<typeof layoutOf>): Promise<Timeline> {
  const meta = readMeta(layout)
  const opened = await openVolumeLedger(layout, meta, {write: false})
  try {
    return await readTimeline(layout.root, opened.ledger)
  } finally {
    await opened.close()
  }
}

export interface HistoryReport {
  path: string
  head: number
  versions: VersionEvent[]
}

export async function pathHistory(volume: string, rawPath: string): Promise<HistoryReport> {
  const path = volPath(rawPath)
  const layout = layoutOf(volume)
  const t = await timelineOf(layout)
  const versions = lineagesOf(t, path, new HistoryStore(layout.history)).map(({order: _o, ...e}) => e)
  if (versions.length === 0) {
    throw new PacioError('EINPUT', `${path}: no such path in the history of volume ${layout.root}`, {suggestion: 'list recorded paths with `paciofs log --volume <dir>`'})
  }

  return {path, head: t.head, versions}
}

export interface CatRequest {
  volume: string
  path: string
  /** epoch (default: the head) */
  at?: number
  /** write to this file (created; replaced only after the bytes are checked) */
  to?: string
  /** else: write here, after the whole version was checked */
  out?: Writable
}

export interface CatResult {
  path: string
  epoch: number
  size: number
  digest: string
  record: {epoch: number; txid: string; op?: string}
}

const fsOpen = promisify(fs.open)
const fsClose = promisify(fs.close)
const fsWrite = promisify(fs.write)

async function writeAll(fd: number, data: Buffer, pos: number): Promise<void> {
  for (let done = 0; done < data.length;) done += (await fsWrite(fd, data, done, data.length - done, pos + done)).bytesWritten
}

/** Writes to a stream; resolves once the stream is done with `chunk` (the caller reuses it). */
function write(out: Writable, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    out.write(chunk, error => (error ? reject(error) : resolve()))
  })
}

/** The content of `path` as it was at epoch `at`, checked against its record and that record against the ledger. */
export async function catAt(req: CatRequest): Promise<CatResult> {
  const path = volPath(req.path)
  const layout = layoutOf(req.volume)
  const t = await timelineOf(layout)
  const at = req.at ?? t.head
  if (at > t.head) throw new PacioError('EINPUT', `epoch ${at} is after the ledger's head (epoch ${t.head})`, {suggestion: `use an epoch between 0 and ${t.head}`})
  const {tree, tainted} = treeAt(t, at)
  const node = tree.entries.get(path)
  if (tainted.has(path)) {
    throw new PacioError('ETAMPER', `refusing ${path} at epoch ${at}: its record at epoch ${tainted.get(path)} does not match its salted hash on the ledger`,
      {suggestion: 'run `paciofs verify --volume <dir> --full` for the full report'})
  }

  if (!node) {
    const life = lineagesOf(t, path, undefined)
    if (life.length === 0) throw new PacioError('EINPUT', `${path}: no such path in the history of volume ${layout.root}`)
    const first = life.find(e => e.path === path)
    const born = first ? first.since ?? first.epoch : undefined
    if (born !== undefined && at < born) throw new PacioError('EINPUT', `${path} did not exist yet at epoch ${at} (it first appears at epoch ${born})`)
    const gone = life.filter(e => e.epoch <= at && (e.op === 'deleted' || (e.op === 'renamed' && e.from === path))).at(-1)
    throw new PacioError('EINPUT', `${path} did not exist at epoch ${at}${gone ? ` (${gone.op === 'deleted' ? 'deleted' : `renamed to ${gone.to}`} at epoch ${gone.epoch})` : ''}`)
  }

  if (node.type !== 'file') throw new PacioError('EINPUT', `${path} was a ${node.type}, not a file, at epoch ${at}`)
  const digest = node.digest
  if (digest === undefined) throw new PacioError('EINPUT', `${path} at epoch ${at} was being written: no content was recorded for it (record at epoch ${node.last.epoch})`)
  const store = new HistoryStore(layout.history)
  const result: CatResult = {path, epoch: at, size: node.size ?? 0, digest, record: {epoch: node.last.epoch, txid: node.last.txid, op: node.last.op}}
  const refuse = (error: unknown): never => {
    if (error instanceof HistoryError) {
      throw new PacioError(error.code, `refusing ${path} at epoch ${at}: ${error.message}`, {suggestion: 'run `paciofs verify --volume <dir>` for the full report'})
    }

    throw error
  }

  if (req.to) {
    // written as it is read (at each chunk's offset, several writes at once), checked against the record's
    // digest; the file appears only if it matches
    const tmp = `${req.to}.paciofs-${process.pid}.tmp`
    const fd = await fsOpen(tmp, 'w', 0o644)
    let closed = false
    try {
      try {
        const m = store.manifest(digest)
        await pipeVersion(store, m, {whole: true, chunks: false, positional: true, sink: (data, pos) => writeAll(fd, data, pos)})
      } catch (error) {
        refuse(error)
      }

      closed = true
      await fsClose(fd)
      await fs.promises.rename(tmp, req.to)
    } finally {
      if (!closed) await fsClose(fd).catch(() => {})
      await fs.promises.rm(tmp, {force: true})
    }

    return result
  }

  // to a stream, which cannot take bytes back: the whole version is checked first (which proves its chunk
  // list, or its marks), then each chunk is checked against that proof as it goes out
  try {
    const v = await proveVersion(store, digest)
    const out = req.out ?? process.stdout
    await pipeProven(store, v, data => write(out, data))
  } catch (error) {
    refuse(error)
  }

  return result
}

export function historyStats(volume: string): HistoryStats & {volume: string} {
  const layout = layoutOf(volume)
  readMeta(layout)
  return {volume: layout.root, ...new HistoryStore(layout.history).stats()}
}
