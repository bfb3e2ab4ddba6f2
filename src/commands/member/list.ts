import {Command} from '@oclif/core'
import {runMember, type MemberResult} from '../../app/member.js'
import {renderError} from '../../cli/errors.js'
import {renderMembers, targetFlags} from '../../cli/member-flags.js'

export default class MemberList extends Command {
  static override summary = 'List the members of a volume (as its ledger records them).'

  static override description = `Prints one member key per line. Through --server you must be a member yourself; without it the volume directory is read directly (it must not be mounted or served at the same time).`

  static override examples = [
    {description: 'Through the server', command: '<%= config.bin %> <%= command.id %> --server files.example:8765 --volume archive'},
    {description: 'On a local volume', command: '<%= config.bin %> <%= command.id %> --volume /srv/archive'},
  ]

  static override enableJsonFlag = true
  static override flags = targetFlags

  async run(): Promise<MemberResult> {
    const {flags} = await this.parse(MemberList)
    try {
      const r = await runMember({volume: flags.volume, server: flags.server, identity: flags.identity, trustNewServerKey: flags['trust-new-server-key']}, {op: 'list'})
      if (!this.jsonEnabled()) for (const line of renderMembers(r)) this.log(line)
      return r
    } catch (error) {
      const r = renderError(error)
      this.error(r.message, {exit: r.exit, suggestions: r.suggestions})
    }
  }
}
