import {Flags} from '@oclif/core'
import chalk from 'chalk'
import type {MemberResult} from '../app/member.js'

export const targetFlags = {
  volume: Flags.string({char: 'v', description: 'volume directory; with --server: the served volume\'s name', required: true}),
  server: Flags.string({description: 'change the volume through `paciofs serve` at HOST:PORT (as a member)'}),
  identity: Flags.string({description: 'your Ed25519 identity key (default: ~/.config/paciofs/identity.key)'}),
  'trust-new-server-key': Flags.boolean({description: 'with --server: accept a server key that differs from the pinned one', default: false}),
}

export function renderMembers(r: MemberResult): string[] {
  return r.members.map(m => `${m}${m === r.you ? chalk.dim('  (you)') : ''}`)
}
