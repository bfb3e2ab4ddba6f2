import {Args, Command, Flags} from '@oclif/core'
import chalk from 'chalk'
import {runLeave} from '../app/status.js'
import {renderError} from '../cli/errors.js'

export default class Leave extends Command {
  static override summary = 'Take a replica server out of a volume\'s group (LEAVE, recorded on the ledger).'

  static override description = `Tells the primary at PRIMARY (HOST:PORT, where \`paciofs serve\` runs) that the server whose key is --identity leaves the group of --volume. The decision is a \`server-leave\` record on the volume's ledger naming that server (it proves its key to the primary), so \`paciofs log\` and \`paciofs status\` show it. From then on the server is not sent blocks, records or versions of the volume, and its running \`paciofs join\` stops (it no longer serves the volume). Its directory stays as it was: \`paciofs verify --volume DIR\` still checks it against the ledger it had followed.

Run it with the key the server joined with. To come back, run \`paciofs join\` again: that is a new request, voted on like the first.`

  static override examples = [
    {description: 'The replica that joined with the default key leaves volume archive', command: '<%= config.bin %> <%= command.id %> files.example:8765 --volume archive'},
    {description: 'A replica that joined with its own key', command: '<%= config.bin %> <%= command.id %> files.example:8765 --volume archive --identity /etc/paciofs/replica.key'},
  ]

  static override enableJsonFlag = true
  static override args = {primary: Args.string({description: 'the volume\'s primary, HOST:PORT', required: true})}
  static override flags = {
    volume: Flags.string({char: 'v', description: 'the served volume\'s name', required: true}),
    identity: Flags.string({description: 'the leaving server\'s Ed25519 key, as given to `paciofs join` (default: ~/.config/paciofs/identity.key)'}),
    'trust-new-server-key': Flags.boolean({description: 'accept a primary key that differs from the pinned one', default: false}),
  }

  async run(): Promise<{server: string; state: string}> {
    const {args, flags} = await this.parse(Leave)
    try {
      const r = await runLeave({server: args.primary, volume: flags.volume, identity: flags.identity, trustNewServerKey: flags['trust-new-server-key']})
      if (!this.jsonEnabled()) this.log(`server ${r.server.slice(0, 16)}… ${chalk.green(r.state === 'left' ? 'left' : r.state)} the group of ${flags.volume}`)
      return r
    } catch (error) {
      const r = renderError(error)
      this.error(r.message, {exit: r.exit, suggestions: r.suggestions})
    }
  }
}
