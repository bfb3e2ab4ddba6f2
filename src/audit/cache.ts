/**
 * The auditor's verified index: what a verify established (the expected tree
 * at a ledger epoch, the senders' positions there, the signed checkpoint of
 * that block), kept OUTSIDE the volume (verify never writes to it), so that
 * the next verify only has to check what the ledger gained since. Its cost
 * then grows with the volume and the new history, not with all history.
 * A ledger that no longer extends the cached checkpoint is reported and the
 * volume is verified in full.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type {CheckerState} from '../broadcast/validate.js'
import type {Checkpoint} from '../ledger/types.js'
import {ExpectedTree, type Inode} from './expected.js'
import type {RecordRef} from './types.js'

const FORMAT = 'paciofs-verified-index'
const VERSION = 2

export interface VerifiedIndex {
  checkpoint: Checkpoint // of the last block verified
  checker: CheckerState // senders' positions after that block
  maxJseq: number // journal rows up to here were all accounted for
  anchoredRows: number // journal rows anchored on the ledger up to the checkpoint
  tree: ExpectedTree
}

/**
 * The file: a JSON header line (format, checkpoint, checker, counts), then one
 * JSON array per line: first the record references' txids and authors (each
 * once, as a table), then each inode, then each path with its inode's number.
 * Arrays rather than objects, and shared strings once, keep 100,000 entries
 * small to write and quick to read.
 */
interface Header {
  format: string
  version: number
  checkpoint: Checkpoint
  checker: CheckerState
  maxJseq: number
  anchoredRows: number
  strings: number
  inodes: number
  paths: number
}

/** epoch, txid and author as string-table numbers, uid, op */
type StoredRef = [number, number, number, number | null, string | null]
/** type, mode, uid, gid, size, digest, target, rdev, xattrs, last, interrupted, mtime (absent in indexes written before it) */
type StoredInode = [string, number | null, number | null, number | null, number | null, string | null, string | null, number | null,
  Array<[string, string]> | null, StoredRef, StoredRef | null, (string | null)?]

export function defaultCacheDir(): string {
  if (process.env.PACIOFS_CACHE_DIR) return process.env.PACIOFS_CACHE_DIR
  return path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'paciofs', 'verify')
}

const fileFor = (dir: string, volumeId: string) => path.join(dir, `${volumeId.replace(/[^0-9a-zA-Z-]/g, '_')}.json`)

/** The cached index of a volume, or undefined if there is none or it is unreadable (then verify runs in full). */
export function loadIndex(dir: string, volumeId: string): VerifiedIndex | undefined {
  try {
    return parse(fs.readFileSync(fileFor(dir, volumeId), 'utf8'), volumeId)
  } catch {
    return undefined
  }
}

/** Forgets the index of a volume: the next verify checks everything. */
export function dropIndex(dir: string, volumeId: string): void {
  fs.rmSync(fileFor(dir, volumeId), {force: true})
}

const opt = <T>(v: T | null): T | undefined => (v === null ? undefined : v)

function parse(text: string, volumeId: string): VerifiedIndex | undefined {
  let at = text.indexOf('\n')
  const line = (): string => {
    const from = at + 1
    at = text.indexOf('\n', from)
    if (at < 0) throw new Error('truncated')
    return text.slice(from, at)
  }

  const h = JSON.parse(text.slice(0, at)) as Header
  if (h.format !== FORMAT || h.version !== VERSION || h.checkpoint?.ledgerId !== volumeId) return undefined
  const strings: string[] = []
  for (let i = 0; i < h.strings; i++) strings.push(JSON.parse(line()) as string)
  const ref = (r: StoredRef): RecordRef => {
    const out: RecordRef = {epoch: r[0], txid: strings[r[1]], author: strings[r[2]]}
    if (r[3] !== null) out.uid = r[3]
    if (r[4] !== null) out.op = r[4]
    if (out.txid === undefined || out.author === undefined) throw new Error('bad reference')
    return out
  }

  const nodes: Inode[] = []
  for (let i = 0; i < h.inodes; i++) {
    const n = JSON.parse(line()) as StoredInode
    const node: Inode = {type: n[0], last: ref(n[9])}
    if (n[1] !== null) node.mode = n[1]
    if (n[2] !== null) node.uid = n[2]
    if (n[3] !== null) node.gid = n[3]
    if (n[4] !== null) node.size = n[4]
    if (n[5] !== null) node.digest = n[5]
    if (n[6] !== null) node.target = n[6]
    if (n[7] !== null) node.rdev = n[7]
    if (n[8] !== null) node.xattrs = new Map(n[8])
    if (n[10] !== null) node.interrupted = ref(n[10])
    if (typeof n[11] === 'string') node.mtime = n[11]
    nodes.push(node)
  }

  const tree = new ExpectedTree()
  for (let i = 0; i < h.paths; i++) {
    const [p, k] = JSON.parse(line()) as [string, number]
    const node = nodes[k]
    if (!node || typeof p !== 'string') return undefined
    tree.entries.set(p, node)
  }

  return {checkpoint: h.checkpoint, checker: h.checker, maxJseq: h.maxJseq, anchoredRows: h.anchoredRows, tree}
}

/** Writes the index beside its final name, in pieces (never one string of the whole), then renames it into place. */
export function saveIndex(dir: string, index: VerifiedIndex): void {
  const strings = new Map<string, number>()
  const str = (s: string) => {
    let k = strings.get(s)
    if (k === undefined) strings.set(s, (k = strings.size))
    return k
  }

  const ids = new Map<Inode, number>()
  const inodes: Inode[] = []
  for (const n of index.tree.entries.values()) {
    if (ids.has(n)) continue
    ids.set(n, inodes.length)
    inodes.push(n)
    str(n.last.txid)
    str(n.last.author)
    if (n.interrupted) {
      str(n.interrupted.txid)
      str(n.interrupted.author)
    }
  }

  const ref = (r: RecordRef): StoredRef => [r.epoch, strings.get(r.txid)!, strings.get(r.author)!, r.uid ?? null, r.op ?? null]
  fs.mkdirSync(dir, {recursive: true, mode: 0o700})
  const file = fileFor(dir, index.checkpoint.ledgerId)
  const tmp = `${file}.${process.pid}.tmp`
  const fd = fs.openSync(tmp, 'w', 0o600)
  try {
    let pieces: string[] = []
    let size = 0
    const put = (s: string) => {
      pieces.push(s, '\n')
      size += s.length
      if (size >= 1 << 20) flush()
    }

    const flush = () => {
      fs.writeSync(fd, pieces.join(''))
      pieces = []
      size = 0
    }

    const header: Header = {format: FORMAT, version: VERSION, checkpoint: index.checkpoint, checker: index.checker, maxJseq: index.maxJseq,
      anchoredRows: index.anchoredRows, strings: strings.size, inodes: inodes.length, paths: index.tree.entries.size}
    put(JSON.stringify(header))
    for (const s of strings.keys()) put(JSON.stringify(s))
    for (const n of inodes) {
      const stored: StoredInode = [n.type, n.mode ?? null, n.uid ?? null, n.gid ?? null, n.size ?? null, n.digest ?? null, n.target ?? null, n.rdev ?? null,
        n.xattrs && n.xattrs.size > 0 ? [...n.xattrs] : null, ref(n.last), n.interrupted ? ref(n.interrupted) : null,
        n.mtime ?? null]
      put(JSON.stringify(stored))
    }

    for (const [p, n] of index.tree.entries) put(JSON.stringify([p, ids.get(n)]))
    flush()
  } finally {
    fs.closeSync(fd)
  }

  fs.renameSync(tmp, file)
}

export type {RecordRef}
