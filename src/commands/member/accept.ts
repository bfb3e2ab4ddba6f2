import {Args, Command, Flags} from '@oclif/core'
import chalk from 'chalk'
import {runAccept} from '../../app/status.js'
import {renderError} from '../../cli/errors.js'

export default class MemberAccept extends Command {
  static override summary = 'Vote to accept a server that asked to join a volume as a replica (VOTEACCEPT, recorded on the ledger).'

  static override description = `KEY is the joining server's key, as \`paciofs join\` prints it (and \`paciofs status\` lists it as pending). You vote as a member of the volume, through its primary; the vote names you. One vote admits the server unless the volume needs more (volume.json: replication.votes).`

  static override examples = [
    {description: 'Admit a pending replica', command: '<%= config.bin %> <%= command.id %> 9f1c03b2d4e8a7f6c5b4a3928170f6e5d4c3b2a1908f7e6d5c4b3a2918070f6e --server files.example:8765 --volume archive'},
  ]

  static override enableJsonFlag = true
  static override args = {key: Args.string({description: 'the joining server\'s key (64 hex digits)', required: true})}
  static override flags = {
    server: Flags.string({description: 'the volume\'s primary, HOST:PORT', required: true}),
    volume: Flags.string({char: 'v', description: 'the served volume\'s name', required: true}),
    identity: Flags.string({description: 'your Ed25519 identity key (default: ~/.config/paciofs/identity.key)'}),
    'trust-new-server-key': Flags.boolean({description: 'accept a server key that differs from the pinned one', default: false}),
  }

  async run(): Promise<{state: string}> {
    const {args, flags} = await this.parse(MemberAccept)
    try {
      const r = await runAccept({server: flags.server, volume: flags.volume, key: args.key, identity: flags.identity, trustNewServerKey: flags['trust-new-server-key']})
      if (!this.jsonEnabled()) this.log(`${chalk.green('voted')} to accept ${args.key.slice(0, 16)}…: it is now ${r.state}`)
      return r
    } catch (error) {
      const r = renderError(error)
      this.error(r.message, {exit: r.exit, suggestions: r.suggestions})
    }
  }
}
