/**
 * `paciofs member`: list, add and remove the members of a volume, either on
 * a local volume directory (not while it is mounted or served) or through a
 * server as a member. Every change is a record on the volume's ledger,
 * naming the member who made it.
 */
import {PacioError} from '../errors.js'
import {checkMemberKey, Members} from '../server/members.js'
import {connectRemote} from './remote-mount.js'
import {loadOrCreateIdentity} from './identity.js'
import {openVolumeStack} from './stack.js'

export type MemberAction = {op: 'list'} | {op: 'add' | 'remove'; key: string}

export interface MemberTarget {
  /** local: the volume directory; remote: the volume's name */
  volume: string
  server?: string
  identity?: string
  trustNewServerKey?: boolean
}

export interface MemberResult {
  volume: string
  you: string
  members: string[]
}

const me = () => ({uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, pid: process.pid})

export async function runMember(target: MemberTarget, action: MemberAction): Promise<MemberResult> {
  const key = action.op === 'list' ? undefined : checkMemberKey(action.key)
  if (target.server) {
    const {conn, identity} = await connectRemote({server: target.server, volume: target.volume, identity: target.identity, trustNewServerKey: target.trustNewServerKey})
    try {
      const method = action.op === 'list' ? 'MemberList' : action.op === 'add' ? 'MemberAdd' : 'MemberRemove'
      const reply = await conn.call(method, {member: key ?? '', caller: me()}).catch(error => {
        throw new PacioError('EINPUT', (error as Error).message, {cause: error})
      })
      return {volume: target.volume, you: identity.pid, members: reply.members}
    } finally {
      conn.close()
    }
  }

  const identity = loadOrCreateIdentity(target.identity)
  const stack = await openVolumeStack(target.volume, {create: false, identity: target.identity, purpose: `paciofs member ${action.op}`, history: false})
  try {
    const members = await Members.open(stack.layout.journal, stack.meta.id, stack.recorder, identity.pid)
    let list = members.list()
    if (action.op === 'add') list = await members.add(key!, identity.pid, me())
    if (action.op === 'remove') list = await members.remove(key!, identity.pid, me())
    return {volume: stack.layout.root, you: identity.pid, members: list}
  } finally {
    await stack.close()
  }
}

/** The caller's own member key (creating the identity on first use). */
export function ownKey(identity?: string): string {
  return loadOrCreateIdentity(identity).pid
}
