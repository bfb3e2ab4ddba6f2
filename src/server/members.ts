/**
 * A volume's members, as its ledger says: `member-add` / `member-remove`
 * records replayed in journal order. The volume's creator is its first
 * member: a volume with no membership records yet gets one for the member of
 * its first record (or, for an empty volume, for whoever opens it now).
 * Changes are recorded, and committed on the ledger, before they take effect.
 */
import {decodeCanonical} from '../crypto/canonical.js'
import {PacioError} from '../errors.js'
import {actingAs} from '../volume/acting.js'
import {Journal} from '../volume/journal.js'
import type {Recorder} from '../volume/recorder.js'
import type {Caller, FsRecord} from '../volume/types.js'

const PID = /^[0-9a-f]{64}$/

export function checkMemberKey(pid: string): string {
  const k = pid.trim().toLowerCase()
  if (!PID.test(k)) throw new PacioError('EINPUT', `not a member key (64 hex digits, as \`paciofs member key\` prints): ${JSON.stringify(pid).slice(0, 80)}`)
  return k
}

export class Members {
  private readonly set = new Set<string>()
  private listeners: Array<() => void> = []

  private constructor(private readonly recorder: Recorder) {}

  /** Reads the membership records of the volume whose journal is `journalFile`. */
  static load(journalFile: string, volumeId: string, recorder: Recorder): {members: Members; first?: string} {
    const m = new Members(recorder)
    const j = Journal.open(journalFile, volumeId, {readonly: true})
    let first: string | undefined
    let seen = false
    try {
      for (const row of j.iterate()) {
        if (first === undefined) first = recordOf(row.record)?.who?.member
        if (row.op !== 'member-add' && row.op !== 'member-remove') continue
        const r = recordOf(row.record)
        if (!r?.member) continue
        seen = true
        if (r.op === 'member-add') m.set.add(r.member)
        else m.set.delete(r.member)
      }
    } finally {
      j.close()
    }

    return {members: m, first: seen ? undefined : first}
  }

  /** For a volume with no membership records: records its creator as the first member. */
  static async open(journalFile: string, volumeId: string, recorder: Recorder, opener: string): Promise<Members> {
    const {members, first} = Members.load(journalFile, volumeId, recorder)
    if (members.set.size === 0 && first !== undefined) await members.record('member-add', first, first, {uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, pid: process.pid})
    else if (members.set.size === 0) await members.record('member-add', opener, opener, {uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, pid: process.pid})
    return members
  }

  has(pid: string): boolean {
    return this.set.has(pid)
  }

  list(): string[] {
    return [...this.set].sort()
  }

  /** Called after every change (the server re-checks its sessions). */
  onChange(fn: () => void): void {
    this.listeners.push(fn)
  }

  private chain: Promise<unknown> = Promise.resolve()

  /** Membership changes run one at a time (two removals must not both pass the last-member check). */
  private serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.chain.then(work, work)
    this.chain = next.catch(() => {})
    return next
  }

  add(pid: string, by: string, caller: Caller): Promise<string[]> {
    return this.serial(() => this.doAdd(pid, by, caller))
  }

  remove(pid: string, by: string, caller: Caller): Promise<string[]> {
    return this.serial(() => this.doRemove(pid, by, caller))
  }

  private async doAdd(pid: string, by: string, caller: Caller): Promise<string[]> {
    const k = checkMemberKey(pid)
    if (!this.set.has(by)) throw new PacioError('EPERM', 'only a member of the volume may add members')
    if (!this.set.has(k)) await this.record('member-add', k, by, caller)
    return this.list()
  }

  private async doRemove(pid: string, by: string, caller: Caller): Promise<string[]> {
    const k = checkMemberKey(pid)
    if (!this.set.has(by)) throw new PacioError('EPERM', 'only a member of the volume may remove members')
    if (!this.set.has(k)) throw new PacioError('EINPUT', `${k.slice(0, 16)}… is not a member of this volume`)
    if (this.set.size === 1) throw new PacioError('EINPUT', 'cannot remove the last member of a volume', {suggestion: 'add another member first'})
    await this.record('member-remove', k, by, caller)
    return this.list()
  }

  private async record(op: 'member-add' | 'member-remove', pid: string, by: string, caller: Caller): Promise<void> {
    await actingAs(by, () => this.recorder.record({op, path: '/', member: pid}, caller))
    await this.recorder.committed()
    if (op === 'member-add') this.set.add(pid)
    else this.set.delete(pid)
    for (const fn of this.listeners) fn()
  }
}

function recordOf(bytes: Buffer): FsRecord | undefined {
  try {
    return decodeCanonical(bytes) as unknown as FsRecord
  } catch {
    return undefined
  }
}
