import {Args, Command} from '@oclif/core'
import chalk from 'chalk'
import {runMember, type MemberResult} from '../../app/member.js'
import {renderError} from '../../cli/errors.js'
import {renderMembers, targetFlags} from '../../cli/member-flags.js'

export default class MemberAdd extends Command {
  static override summary = 'Add a member to a volume (recorded on its ledger).'

  static override description = `KEY is the member's public key, as \`paciofs member key\` prints it on their machine. Only a member may add members; the record names you. The new member can then mount the volume from a server that serves it.

Without --server the volume directory is changed directly (it must not be mounted or served at the same time).`

  static override examples = [
    {description: 'Add a member through the server', command: '<%= config.bin %> <%= command.id %> 3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29 --server files.example:8765 --volume archive'},
    {description: 'Add a member on a local volume', command: '<%= config.bin %> <%= command.id %> 3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29 --volume /srv/archive'},
  ]

  static override enableJsonFlag = true
  static override args = {key: Args.string({description: 'the member\'s public key (64 hex digits)', required: true})}
  static override flags = targetFlags

  async run(): Promise<MemberResult> {
    const {args, flags} = await this.parse(MemberAdd)
    try {
      const r = await runMember({volume: flags.volume, server: flags.server, identity: flags.identity, trustNewServerKey: flags['trust-new-server-key']}, {op: 'add', key: args.key})
      if (!this.jsonEnabled()) {
        this.log(`${chalk.green('added')} ${args.key.slice(0, 16)}…; members of ${r.volume}:`)
        for (const line of renderMembers(r)) this.log(`  ${line}`)
      }

      return r
    } catch (error) {
      const r = renderError(error)
      this.error(r.message, {exit: r.exit, suggestions: r.suggestions})
    }
  }
}
