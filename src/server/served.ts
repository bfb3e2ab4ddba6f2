/**
 * One served volume: its stack (the same as a local mount's), what clients
 * see (the volume with its read-only history view), its members and its path
 * guard. Volumes are addressed by name (volume.json's name, which is the
 * directory's name when the volume was created).
 */
import {openVolumeStack, type VolumeStack} from '../app/stack.js'
import {PacioError} from '../errors.js'
import {readTimeline} from '../history/timeline.js'
import {HistoryView} from '../history/view.js'
import type {Caller, Volume} from '../volume/types.js'
import {PathGuard} from './guard.js'
import {Members} from './members.js'

/** What a server's volume needs of its members: Members on a writable volume, the ledger's view on a replica. */
export interface MemberSet {
  has(pid: string): boolean
  list(): string[]
  onChange(fn: () => void): void
  add(pid: string, by: string, caller: Caller): Promise<string[]>
  remove(pid: string, by: string, caller: Caller): Promise<string[]>
}

/** A volume as the Volume service serves it (a writable volume, or a replica's read-only copy). */
export interface ServedVolume {
  name: string
  id: string
  volume: Volume
  members: MemberSet
  guard: PathGuard
}

export interface Served extends ServedVolume {
  stack: VolumeStack
  members: Members
}

/** `onEvent`: hears of a record of a logged create or unlink that could not be journaled (the op log keeps it). */
export async function openServed(dir: string, opts: {identity?: string; onEvent?: (message: string) => void}): Promise<Served> {
  const stack = await openVolumeStack(dir, {create: true, identity: opts.identity, purpose: 'paciofs serve', history: true})
  try {
    // creates and unlinks are answered once in the op log; their records share journal transactions
    stack.volume.useOpLog(error => opts.onEvent?.(`${stack.meta.name}: a record of the op log not journaled: ${(error as Error).message}`))
    const members = await Members.open(stack.layout.journal, stack.meta.id, stack.recorder, stack.member)
    const volume = stack.history ? new HistoryView(stack.volume, stack.history, () => readTimeline(stack.layout.root)) : stack.volume
    return {name: stack.meta.name, id: stack.meta.id, stack, volume, members, guard: new PathGuard(stack.layout.root)}
  } catch (error) {
    await stack.close()
    throw error
  }
}

/** Opens every volume; names must be unique. Closes what it opened if one fails. */
export async function openAll(dirs: string[], opts: {identity?: string; onEvent?: (message: string) => void}): Promise<Map<string, Served>> {
  const out = new Map<string, Served>()
  try {
    for (const dir of dirs) {
      const s = await openServed(dir, opts)
      if (out.has(s.name)) {
        await s.stack.close()
        throw new PacioError('EINPUT', `two volumes are named ${s.name}: ${out.get(s.name)!.stack.layout.root} and ${s.stack.layout.root}`,
          {suggestion: 'serve volumes whose directories have different names'})
      }

      out.set(s.name, s)
    }
  } catch (error) {
    for (const s of out.values()) await s.stack.close().catch(() => {})
    throw error
  }

  return out
}
