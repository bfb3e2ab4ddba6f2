/**
 * What replication reads of a volume's journal: the server records (for the
 * ServerSet) and record preimages by salted hash. A read-only connection of
 * its own (WAL: it sees what the writer committed).
 */
import {decodeCanonical} from '../crypto/canonical.js'
import {Journal} from '../volume/journal.js'
import type {FsRecord} from '../volume/types.js'
import {SERVER_OPS, type ServerSet} from './servers.js'

export function decodeRecord(bytes: Buffer): FsRecord | undefined {
  try {
    const r = decodeCanonical(bytes) as unknown as FsRecord
    return r && typeof r === 'object' && typeof r.op === 'string' ? r : undefined
  } catch {
    return undefined
  }
}

/** Replays the journal's server records (journal order = ledger order on both primary and replica) into `servers`. */
export function loadServers(journal: Journal, servers: ServerSet): void {
  for (const row of journal.iterate()) {
    if (!SERVER_OPS.has(row.op)) continue
    const r = decodeRecord(row.record)
    if (r) servers.apply(r)
  }
}

/** Members of the volume as its journal says (member-add / member-remove in order). */
export function loadMembers(journal: Journal): Set<string> {
  const set = new Set<string>()
  let first: string | undefined
  let seen = false
  for (const row of journal.iterate()) {
    if (first === undefined) first = decodeRecord(row.record)?.who?.member
    if (row.op !== 'member-add' && row.op !== 'member-remove') continue
    const r = decodeRecord(row.record)
    if (!r?.member) continue
    seen = true
    if (r.op === 'member-add') set.add(r.member)
    else set.delete(r.member)
  }

  if (!seen && first) set.add(first)
  return set
}

export function preimageOf(journal: Journal, hash: Buffer): {salt: Buffer; record: Buffer} | undefined {
  const row = journal.auditRowByHash(hash)
  if (!row) return undefined
  const [, , saltLen, both] = row
  return {salt: both.subarray(0, saltLen), record: both.subarray(saltLen)}
}
