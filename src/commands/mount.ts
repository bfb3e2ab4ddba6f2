import {Args, Command, Flags} from '@oclif/core'
import chalk from 'chalk'
import {runMount} from '../app/mount.js'
import {runRemoteMount} from '../app/remote-mount.js'
import {renderError} from '../cli/errors.js'

export default class Mount extends Command {
  static override summary = 'Mount a tamper-proof volume and record every change on its ledger.'

  static override description = `Creates the volume on first use (an empty or new directory), mounts it at MOUNTPOINT and serves it until you press Ctrl-C, send SIGTERM, or unmount it with \`fusermount -u MOUNTPOINT\`. Every change made through the mount is recorded as a salted hash on the volume's ledger — the embedded one, or with --chain a MultiChain blockchain that every party (company, tax advisor, auditor) can run a node of; \`paciofs log\` shows the records.

With --chain multichain:new, paciofs creates a chain in the volume's state directory and runs a local multichaind for it on loopback (fresh ports) for as long as the volume is mounted (or log/verify run); the MultiChain binaries must be on PATH. A record counts as committed when its block has --confirmations confirmations.

The volume directory holds the files as you see them plus a hidden .paciofs/ state directory (journal, ledger, keys), which is never visible through the mount. Needs root (the mount serves all users and keeps each file's owner) and FUSE (Debian: libfuse2, fuse3).`

  static override examples = [
    {description: 'Mount a new volume and work in it', command: '<%= config.bin %> <%= command.id %> /mnt/archive --volume /srv/archive'},
    {description: 'Record on a new MultiChain chain run by a local node', command: '<%= config.bin %> <%= command.id %> /mnt/archive --volume /srv/archive --chain multichain:new'},
    {description: 'Record on an existing MultiChain node', command: '<%= config.bin %> <%= command.id %> /mnt/archive --volume /srv/archive --chain multichain://multichainrpc:SECRET@10.0.0.5:6744/archive-chain'},
    {description: 'Join an existing chain with a local node', command: '<%= config.bin %> <%= command.id %> /mnt/archive --volume /srv/archive --chain multichain:archive-chain@10.0.0.5:6745'},
    {description: 'Sign records with a given identity key', command: '<%= config.bin %> <%= command.id %> /mnt/archive --volume /srv/archive --identity ~/.config/paciofs/auditor.key'},
    {description: 'Mount the volume "archive" served by `paciofs serve` on another machine', command: '<%= config.bin %> <%= command.id %> /mnt/archive --server files.example:8765 --volume archive'},
    {description: 'The same, falling back to a replica for reads if the primary goes away', command: '<%= config.bin %> <%= command.id %> /mnt/archive --server files.example:8765,replica.example:8766 --volume archive'},
  ]

  static override args = {
    mountpoint: Args.string({description: 'empty directory to mount the volume on', required: true}),
  }

  static override flags = {
    volume: Flags.string({char: 'v', description: 'volume directory (created on first use); with --server: the served volume\'s name', required: true}),
    server: Flags.string({description: 'mount a volume served by `paciofs serve` at HOST:PORT (your identity key must be a member); several, comma-separated (the primary, then replicas from `paciofs join`): when one stops answering the mount moves to the next (reads carry on; replicas refuse writes with EROFS)'}),
    'trust-new-server-key': Flags.boolean({description: 'with --server: accept (and pin) a server key that differs from the one pinned before', default: false}),
    identity: Flags.string({description: 'Ed25519 identity key that signs your records (default: created in ~/.config/paciofs)'}),
    debug: Flags.boolean({description: 'print every FUSE operation (libfuse debug output)', default: false}),
    history: Flags.boolean({description: 'keep every committed version in the history store (--no-history: a baseline for benchmarks; versions written then are not kept and verify reports them)', default: true, allowNo: true}),
    quiet: Flags.boolean({char: 'q', description: 'print nothing but errors', default: false}),
    chain: Flags.string({description: "the ledger: multichain://USER:PASS@HOST:PORT/CHAIN (an existing MultiChain node), multichain:new (a new chain on a local node in the volume's state dir), multichain:CHAIN@HOST:PORT (a local node joining a chain) or embedded (default). Only needed when the volume is created; it remembers its chain"}),
    confirmations: Flags.integer({description: 'MultiChain: confirmations a block needs before its records count as committed (default 1; remembered by the volume)', min: 1, max: 100}),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(Mount)
    if (flags.server) return this.remote(args.mountpoint, flags.server, flags)
    try {
      const summary = await runMount({
        mountpoint: args.mountpoint,
        volume: flags.volume,
        identity: flags.identity,
        debug: flags.debug,
        history: flags.history,
        chain: flags.chain,
        confirmations: flags.confirmations,
        onWarning: message => this.warn(message),
        onReady: info => {
          if (flags.quiet) return
          this.log(`${chalk.green('mounted')} ${info.created ? 'new ' : ''}volume ${chalk.bold(info.volume)} at ${chalk.bold(info.mountpoint)}`)
          this.log(chalk.dim(`volume ${info.volumeId}, member ${info.member.slice(0, 16)}…, ${info.ledger}; Ctrl-C or fusermount -u to unmount`))
        },
        onInternalError: (op, error) => this.warn(`${op}: ${(error as Error)?.message ?? error}`),
      })
      if (!flags.quiet) this.log(`${chalk.green('unmounted')} ${summary.mountpoint} (${summary.reason}); ${summary.records} records in the journal, all committed`)
    } catch (error) {
      const r = renderError(error)
      this.error(r.message, {exit: r.exit, suggestions: r.suggestions})
    }
  }

  private async remote(mountpoint: string, server: string, flags: {volume: string; identity?: string; debug: boolean; quiet: boolean; 'trust-new-server-key': boolean}): Promise<void> {
    try {
      const summary = await runRemoteMount({
        mountpoint, server, volume: flags.volume, identity: flags.identity, debug: flags.debug, trustNewServerKey: flags['trust-new-server-key'],
        onReady: info => {
          if (flags.quiet) return
          if (info.pinnedNow) this.log(chalk.yellow(`pinned the key of ${info.server}: SHA256:${info.fingerprint} (compare it with what \`paciofs serve\` printed)`))
          this.log(`${chalk.green('mounted')} volume ${chalk.bold(info.volume)} from ${chalk.bold(info.server)} at ${chalk.bold(info.mountpoint)}`)
          this.log(chalk.dim(`volume ${info.volumeId}, member ${info.member.slice(0, 16)}…; Ctrl-C or fusermount -u to unmount`))
        },
        onInternalError: (op, error) => this.warn(`${op}: ${(error as Error)?.message ?? error}`),
        onEvent: message => {
          if (!flags.quiet) this.log(chalk.dim(message))
        },
      })
      if (!flags.quiet) this.log(`${chalk.green('unmounted')} ${summary.mountpoint} (${summary.reason})`)
    } catch (error) {
      const r = renderError(error)
      this.error(r.message, {exit: r.exit, suggestions: r.suggestions})
    }
  }
}
