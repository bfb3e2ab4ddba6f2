/**
 * A replica's copy of a volume on disk: the same layout as any volume (the
 * backing directory, .paciofs/ with volume.json, ledger.db — a mirror of the
 * primary's —, journal.db, history/), plus .paciofs/replica.json saying
 * whose replica it is. log, verify, history and cat work on it unchanged.
 */
import fs from 'node:fs'
import path from 'node:path'
import {PacioError} from '../errors.js'
import {FORMAT, FORMAT_VERSION, layoutOf, readMeta, writeMeta, type VolumeLayout, type VolumeMeta} from '../volume/layout.js'

export interface ReplicaInfo {
  v: 1
  /** the primary: where it serves, its ledger key, its TLS certificate (pinned at join) */
  primary: {address: string; key: string; fingerprint: string}
  /** this server's key */
  server: string
}

export function replicaFile(layout: VolumeLayout): string {
  return path.join(layout.state, 'replica.json')
}

export function readReplica(layout: VolumeLayout): ReplicaInfo | undefined {
  try {
    return JSON.parse(fs.readFileSync(replicaFile(layout), 'utf8')) as ReplicaInfo
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new PacioError('ECORRUPT', `${replicaFile(layout)}: ${(error as Error).message}`)
  }
}

/** Opens an existing replica directory, or makes a new one (the directory must be new or empty). */
export function openReplicaDir(dir: string, want: {volumeId: string; name: string; primary: ReplicaInfo['primary']; server: string}): {layout: VolumeLayout; meta: VolumeMeta; info: ReplicaInfo; created: boolean} {
  const layout = layoutOf(dir)
  if (fs.existsSync(layout.meta)) {
    const meta = readMeta(layout)
    const info = readReplica(layout)
    if (!info) throw new PacioError('EINPUT', `${layout.root} is a volume of its own, not a replica`, {suggestion: 'give --dir a new or empty directory'})
    if (meta.id !== want.volumeId) throw new PacioError('EFOREIGN', `${layout.root} is a replica of volume ${meta.id}, not of ${want.name} (${want.volumeId})`)
    if (info.server !== want.server) throw new PacioError('EINPUT', `${layout.root} was joined with key ${info.server.slice(0, 16)}…, not ${want.server.slice(0, 16)}…`, {suggestion: 'pass the same --identity as at the first join'})
    if (info.primary.address !== want.primary.address || info.primary.fingerprint !== want.primary.fingerprint) {
      info.primary = want.primary
      writeReplica(layout, info)
    }

    return {layout, meta, info, created: false}
  }

  if (fs.existsSync(layout.root) && fs.readdirSync(layout.root).length > 0) {
    throw new PacioError('EFOREIGN', `${layout.root} is not empty and not a replica; refusing to mix files into it`, {suggestion: 'choose an empty or new directory for --dir'})
  }

  if (!fs.existsSync(layout.root)) fs.mkdirSync(layout.root, {recursive: true, mode: 0o755})
  fs.mkdirSync(layout.state, {mode: 0o700})
  const meta: VolumeMeta = {format: FORMAT, version: FORMAT_VERSION, id: want.volumeId, name: want.name, created: Date.now(), ledger: {driver: 'embedded'}}
  const info: ReplicaInfo = {v: 1, primary: want.primary, server: want.server}
  writeReplica(layout, info)
  writeMeta(layout, meta) // last: its presence marks a complete replica directory
  return {layout, meta, info, created: true}
}

function writeReplica(layout: VolumeLayout, info: ReplicaInfo): void {
  const file = replicaFile(layout)
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(info, null, 2) + '\n', {mode: 0o600})
  fs.renameSync(`${file}.tmp`, file)
}
