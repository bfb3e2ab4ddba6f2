import {Command, Flags} from '@oclif/core'
import chalk from 'chalk'
import {runServe} from '../app/serve.js'
import {renderError} from '../cli/errors.js'

export default class Serve extends Command {
  static override summary = 'Serve volumes over the network to their members (TLS, gRPC protocol paciofs.v1).'

  static override description = `Opens each volume (created on first use, like \`paciofs mount\`) with its own ledger, journal and members, and serves them until Ctrl-C or SIGTERM; then it lets running calls finish, releases and records every file clients still hold open, commits and exits 0.

Clients mount a served volume with \`paciofs mount MOUNTPOINT --server HOST:PORT --volume NAME\`, where NAME is the volume's name (its directory's name when it was created). Only members of a volume get in: its creator is the first member, and members add others with \`paciofs member add\`. Every record names the member who caused it.

On first start the server makes a TLS key and certificate in ~/.config/paciofs/server (or --state); clients pin its fingerprint, printed at start, on first contact.`

  static override examples = [
    {description: 'Serve one volume on the default port, loopback only', command: '<%= config.bin %> <%= command.id %> --volume /srv/archive'},
    {description: 'Let other servers join as replicas without a manual vote', command: '<%= config.bin %> <%= command.id %> --volume /srv/archive --accept any'},
    {description: 'Serve two volumes to the network', command: '<%= config.bin %> <%= command.id %> --volume /srv/archive --volume /srv/invoices --host 0.0.0.0 --port 8765'},
    {description: 'Fix the data channel\'s port too (for a firewall)', command: '<%= config.bin %> <%= command.id %> --volume /srv/archive --host 0.0.0.0 --port 8765 --data-port 8766'},
  ]

  static override flags = {
    volume: Flags.string({char: 'v', description: 'volume directory (repeat for several volumes; created on first use)', required: true, multiple: true}),
    host: Flags.string({description: 'address to listen on', default: '127.0.0.1'}),
    port: Flags.integer({char: 'p', description: 'TCP port (0: any free port, printed at start)', default: 8765, min: 0, max: 65535}),
    'data-port': Flags.integer({description: 'TCP port of the data channel, where mounts send and fetch file content beside gRPC (same TLS key, same members; 0: any free port, printed at start and told to each client)', default: 0, min: 0, max: 65535}),
    identity: Flags.string({description: 'Ed25519 key of the server\'s operator: signs the ledger envelopes, first member of volumes it creates (default: created in ~/.config/paciofs)'}),
    state: Flags.string({description: 'directory for the server\'s TLS key and certificate (default: ~/.config/paciofs/server)'}),
    'max-handles': Flags.integer({description: 'open files one session may hold (more: EMFILE)', default: 1024, min: 1}),
    accept: Flags.string({description: 'how this server votes on servers that ask to join (`paciofs join`): any = accept at once, manual = a member runs `paciofs member accept KEY`', options: ['any', 'manual'], default: 'manual'}),
    'sync-replicas': Flags.integer({description: 'fsync and sync return only once this many replica servers (`paciofs join`) have applied the records: an acknowledged write survives the loss of this server (EIO if they do not confirm within 15 s)', default: 0, min: 0}),
    quiet: Flags.boolean({char: 'q', description: 'print nothing but errors', default: false}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Serve)
    try {
      const summary = await runServe({
        volumes: flags.volume, host: flags.host, port: flags.port, dataPort: flags['data-port'], identity: flags.identity, stateDir: flags.state, maxHandles: flags['max-handles'], accept: flags.accept as 'any' | 'manual', syncReplicas: flags['sync-replicas'],
        onReady: info => {
          if (flags.quiet) return
          this.log(`${chalk.green('serving')} on ${chalk.bold(info.address)} (protocol paciofs.v1)${info.dataPort ? `, data channel on port ${info.dataPort}` : ''}`)
          this.log(`server key ${info.fingerprint}${info.tlsCreated ? ' (new)' : ''}`)
          for (const v of info.volumes) this.log(`  volume ${chalk.bold(v.name)} ${v.created ? '(new) ' : ''}${v.dir}, ${v.members} member${v.members === 1 ? '' : 's'}`)
        },
        onEvent: message => {
          if (!flags.quiet) this.log(chalk.dim(message))
        },
      })
      if (!flags.quiet) this.log(`${chalk.green('stopped')} (${summary.reason}); ${summary.records} records in the journals, all committed`)
    } catch (error) {
      const r = renderError(error)
      this.error(r.message, {exit: r.exit, suggestions: r.suggestions})
    }
  }
}
