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
const VERSION = 1

export interface VerifiedIndex {
  checkpoint: Checkpoint // of the last block verified
  checker: CheckerState // senders' positions after that block
  maxJseq: number // journal rows up to here were all accounted for
  anchoredRows: number // journal rows anchored on the ledger up to the checkpoint
  tree: ExpectedTree
}

interface Stored {
  format: string
  version: number
  checkpoint: Checkpoint
  checker: CheckerState
  maxJseq: number
  anchoredRows: number
  inodes: Array<Omit<Inode, 'xattrs'> & {xattrs: Array<[string, string]>}>
  paths: Array<[string, number]>
}

export function defaultCacheDir(): string {
  if (process.env.PACIOFS_CACHE_DIR) return process.env.PACIOFS_CACHE_DIR
  return path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'paciofs', 'verify')
}

const fileFor = (dir: string, volumeId: string) => path.join(dir, `${volumeId.replace(/[^0-9a-zA-Z-]/g, '_')}.json`)

/** The cached index of a volume, or undefined if there is none or it is unreadable (then verify runs in full). */
export function loadIndex(dir: string, volumeId: string): VerifiedIndex | undefined {
  let s: Stored
  try {
    s = JSON.parse(fs.readFileSync(fileFor(dir, volumeId), 'utf8')) as Stored
  } catch {
    return undefined
  }

  if (s.format !== FORMAT || s.version !== VERSION || s.checkpoint?.ledgerId !== volumeId || !Array.isArray(s.inodes) || !Array.isArray(s.paths)) return undefined
  const nodes: Inode[] = s.inodes.map(n => ({...n, xattrs: new Map(n.xattrs)}))
  const tree = new ExpectedTree()
  for (const [p, i] of s.paths) {
    const node = nodes[i]
    if (!node) return undefined
    tree.entries.set(p, node)
  }

  return {checkpoint: s.checkpoint, checker: s.checker, maxJseq: s.maxJseq, anchoredRows: s.anchoredRows, tree}
}

export function saveIndex(dir: string, index: VerifiedIndex): void {
  const ids = new Map<Inode, number>()
  const inodes: Stored['inodes'] = []
  const paths: Stored['paths'] = []
  for (const [p, n] of index.tree.entries) {
    let id = ids.get(n)
    if (id === undefined) {
      id = inodes.length
      ids.set(n, id)
      inodes.push({...n, xattrs: [...n.xattrs]})
    }

    paths.push([p, id])
  }

  const stored: Stored = {format: FORMAT, version: VERSION, checkpoint: index.checkpoint, checker: index.checker, maxJseq: index.maxJseq,
    anchoredRows: index.anchoredRows, inodes, paths}
  fs.mkdirSync(dir, {recursive: true, mode: 0o700})
  const file = fileFor(dir, index.checkpoint.ledgerId)
  const tmp = `${file}.${process.pid}.tmp`
  fs.writeFileSync(tmp, JSON.stringify(stored), {mode: 0o600})
  fs.renameSync(tmp, file)
}

export type {RecordRef}
