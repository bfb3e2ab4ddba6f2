/**
 * Where a volume keeps what: the backing directory holds the files as users
 * see them, `.paciofs/` inside it holds the state (never visible through the
 * mount). This module creates, recognises and locks volumes.
 */
import {randomUUID} from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import {PacioError} from '../errors.js'
import {pidAlive} from '../process.js'

export const STATE_DIR = '.paciofs'
export const FORMAT = 'paciofs-volume'
export const FORMAT_VERSION = 1

export interface VolumeMeta {
  format: typeof FORMAT
  version: number
  id: string
  name: string
  created: number
  ledger: LedgerMeta
  /** replica servers: accept votes a joining server needs (default 1) */
  replication?: {votes?: number}
}

/** Which ledger a volume uses; for MultiChain also where and how (see src/app/ledger.ts). */
export interface LedgerMeta {
  driver: string
  /** `--chain` as given (multichain://… keeps the RPC password: volume.json is 0600 in a 0700 directory) */
  spec?: string
  chain?: string
  stream?: string
  /** hash of the chain's genesis block, pinned at the first mount */
  genesis?: string
  confirmations?: number
}

export interface VolumeLayout {
  root: string
  state: string
  meta: string
  ledger: string
  broadcast: string
  journal: string
  /** creates the FUSE binding made before their records were journaled (oplog.ts) */
  opLog: string
  nodeKey: string
  lock: string
  history: string
}

export function layoutOf(root: string): VolumeLayout {
  const abs = path.resolve(root)
  const state = path.join(abs, STATE_DIR)
  return {
    root: abs,
    state,
    meta: path.join(state, 'volume.json'),
    ledger: path.join(state, 'ledger.db'),
    broadcast: path.join(state, 'broadcast.db'),
    journal: path.join(state, 'journal.db'),
    opLog: path.join(state, 'oplog'),
    nodeKey: path.join(state, 'node.key'),
    lock: path.join(state, 'lock'),
    history: path.join(state, 'history'),
  }
}

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw error
  }
}

/** Reads and checks volume.json; throws ENOVOLUME / EFOREIGN / ECORRUPT with the file named. */
export function readMeta(layout: VolumeLayout): VolumeMeta {
  let raw: string
  try {
    raw = fs.readFileSync(layout.meta, 'utf8')
  } catch (error) {
    throw new PacioError('ENOVOLUME', `${layout.root} is not a PacioFS volume (no ${STATE_DIR}/volume.json)`, {cause: error,
      suggestion: 'create one with `paciofs mount <mountpoint> --volume <dir>`'})
  }

  let meta: VolumeMeta
  try {
    meta = JSON.parse(raw) as VolumeMeta
  } catch {
    throw new PacioError('ECORRUPT', `${layout.meta}: not valid JSON`)
  }

  if (meta.format !== FORMAT) throw new PacioError('EFOREIGN', `${layout.meta}: belongs to another tool (format ${JSON.stringify(meta.format)})`)
  if (meta.version !== FORMAT_VERSION) throw new PacioError('EFOREIGN', `${layout.meta}: volume format version ${meta.version} is not supported (this paciofs reads version ${FORMAT_VERSION})`)
  if (typeof meta.id !== 'string' || meta.id.length === 0) throw new PacioError('ECORRUPT', `${layout.meta}: missing volume id`)
  return meta
}

/**
 * Opens the volume at root, creating it when `create` is set and the
 * directory is absent or empty. A non-empty directory that is not a volume is
 * refused: PacioFS never adopts files it did not record.
 */
export function openLayout(root: string, opts: {create: boolean; ledger?: LedgerMeta}): {layout: VolumeLayout; meta: VolumeMeta; created: boolean} {
  const layout = layoutOf(root)
  const st = statOrNull(layout.root)
  if (st && !st.isDirectory()) throw new PacioError('EINPUT', `volume ${layout.root} is not a directory`)
  if (st && statOrNull(layout.state)) return {layout, meta: readMeta(layout), created: false}
  if (!opts.create) throw new PacioError('ENOVOLUME', `${layout.root} is not a PacioFS volume`, {suggestion: 'check the --volume path'})
  if (st && fs.readdirSync(layout.root).length > 0) {
    throw new PacioError('EFOREIGN', `${layout.root} is not empty and not a PacioFS volume; refusing to adopt files that were never recorded`,
      {suggestion: 'choose an empty or new directory for --volume'})
  }

  if (!st) fs.mkdirSync(layout.root, {recursive: true, mode: 0o755})
  fs.mkdirSync(layout.state, {mode: 0o700})
  const meta: VolumeMeta = {format: FORMAT, version: FORMAT_VERSION, id: randomUUID(), name: path.basename(layout.root),
    created: Date.now(), ledger: opts.ledger ?? {driver: 'embedded'}}
  writeMeta(layout, meta)
  return {layout, meta, created: true}
}

/** Replaces volume.json atomically (tmp, fsync, rename). */
export function writeMeta(layout: VolumeLayout, meta: VolumeMeta): void {
  const tmp = `${layout.meta}.tmp`
  fs.writeFileSync(tmp, JSON.stringify(meta, null, 2) + '\n', {mode: 0o600})
  const fd = fs.openSync(tmp, 'r')
  fs.fsyncSync(fd)
  fs.closeSync(fd)
  fs.renameSync(tmp, layout.meta)
}

/** Takes the volume's writer lock (one mount or server at a time); a lock of a dead process is taken over. */
export function lockVolume(layout: VolumeLayout, purpose: string): () => void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(layout.lock, JSON.stringify({pid: process.pid, purpose, since: Date.now()}), {flag: 'wx', mode: 0o600})
      return () => {
        try {
          const held = JSON.parse(fs.readFileSync(layout.lock, 'utf8')) as {pid: number}
          if (held.pid === process.pid) fs.unlinkSync(layout.lock)
        } catch { /* already gone */ }
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      let holder: {pid?: number; purpose?: string} = {}
      try {
        holder = JSON.parse(fs.readFileSync(layout.lock, 'utf8'))
      } catch { /* torn lock file: treat as stale */ }
      if (holder.pid && holder.pid !== process.pid && pidAlive(holder.pid)) {
        throw new PacioError('EBUSY', `volume ${layout.root} is in use by process ${holder.pid} (${holder.purpose ?? 'unknown'})`,
          {suggestion: 'unmount it first (Ctrl-C the mount, or `fusermount -u <mountpoint>`)'})
      }
      fs.rmSync(layout.lock, {force: true})
    }
  }
  throw new PacioError('EBUSY', `could not lock volume ${layout.root}`)
}

/** Who holds the lock, if anyone alive does. */
export function lockHolder(layout: VolumeLayout): number | undefined {
  try {
    const held = JSON.parse(fs.readFileSync(layout.lock, 'utf8')) as {pid: number}
    return pidAlive(held.pid) ? held.pid : undefined
  } catch {
    return undefined
  }
}
