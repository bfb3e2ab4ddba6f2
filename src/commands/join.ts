import {Args, Command, Flags} from '@oclif/core'
import chalk from 'chalk'
import {runJoin} from '../app/join.js'
import {renderError} from '../cli/errors.js'

export default class Join extends Command {
  static override summary = 'Join a served volume\'s group as a replica server: follow its ledger into a local directory and serve it.'

  static override description = `Asks the primary at PRIMARY (HOST:PORT, where \`paciofs serve\` runs) to let this server join the volume's group. The request is recorded on the volume's ledger, signed with this server's key (--identity); one vote of an accepted server admits it (the primary votes at once if it runs with --accept any; otherwise a member runs \`paciofs member accept KEY\`).

Once accepted, the replica follows the ledger into DIR: every block is checked (links, Merkle root, signatures), every record's preimage against its salted hash on the ledger, every file version against its digest, before it is applied. Records and versions are fetched from any accepted server; one that serves something that does not match is voted out and another is tried. DIR becomes a complete volume: \`paciofs verify --volume DIR\` checks it against the same ledger (stop the join first).

The replica serves read-only mounts to the volume's members (\`paciofs mount MNT --server THIS:PORT --volume NAME\`; writes answer EROFS naming the primary) and blocks, records and versions to the other replicas. It runs until Ctrl-C / SIGTERM; run the same command again to resume (also after a crash).`

  static override examples = [
    {description: 'Join volume archive served at files.example:8765, keep the copy in /srv/replica', command: '<%= config.bin %> <%= command.id %> files.example:8765 --volume archive --dir /srv/replica --port 8766'},
    {description: 'A second replica that votes for newcomers itself', command: '<%= config.bin %> <%= command.id %> files.example:8765 --volume archive --dir /srv/replica2 --port 8767 --accept any'},
  ]

  static override args = {primary: Args.string({description: 'the primary server, HOST:PORT', required: true})}

  static override flags = {
    volume: Flags.string({char: 'v', description: 'the served volume\'s name', required: true}),
    dir: Flags.string({char: 'd', description: 'local directory for the replica (new or empty at the first join; the same one to resume)', required: true}),
    identity: Flags.string({description: 'this server\'s Ed25519 key (default: ~/.config/paciofs/identity.key)'}),
    accept: Flags.string({description: 'how this server votes on servers that ask to join after it', options: ['any', 'manual'], default: 'manual'}),
    host: Flags.string({description: 'address to listen on', default: '127.0.0.1'}),
    port: Flags.integer({char: 'p', description: 'TCP port (0: any free port, printed at start)', default: 8766, min: 0, max: 65535}),
    advertise: Flags.string({description: 'HOST:PORT other servers reach this one at (default: --host and the bound port)'}),
    state: Flags.string({description: 'directory for this server\'s TLS key and certificate (default: ~/.config/paciofs/server)'}),
    'trust-new-server-key': Flags.boolean({description: 'accept a primary key that differs from the pinned one', default: false}),
    quiet: Flags.boolean({char: 'q', description: 'print nothing but errors', default: false}),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(Join)
    try {
      const summary = await runJoin({
        primary: args.primary, volume: flags.volume, dir: flags.dir, identity: flags.identity, accept: flags.accept as 'any' | 'manual',
        host: flags.host, port: flags.port, advertise: flags.advertise, stateDir: flags.state, trustNewServerKey: flags['trust-new-server-key'],
        onReady: info => {
          if (flags.quiet) return
          this.log(`${chalk.green('replica')} of ${chalk.bold(flags.volume)} in ${info.dir}${info.created ? ' (new)' : ''}, applied up to epoch ${info.applied}`)
          this.log(`serving on ${chalk.bold(info.address)} (read-only mounts, peers); server key ${info.server}`)
          this.log(`TLS ${info.fingerprint}`)
        },
        onEvent: message => {
          if (!flags.quiet) this.log(chalk.dim(message))
        },
      })
      if (!flags.quiet) this.log(`${chalk.green('stopped')} (${summary.reason}); applied up to epoch ${summary.applied}, ${summary.records} records this run`)
    } catch (error) {
      const r = renderError(error)
      this.error(r.message, {exit: r.exit, suggestions: r.suggestions})
    }
  }
}
