import {Command, Flags} from '@oclif/core'
import chalk from 'chalk'
import Table from 'cli-table3'
import {runRepair, type RepairReport} from '../app/repair.js'
import {renderError} from '../cli/errors.js'

const MiB = 1024 * 1024

export default class Repair extends Command {
  static override summary = 'Restore what verify reports as modified, missing or unexpected to the state the ledger records, and record the repair.'

  static override description = `Runs verify on the volume (which must not be mounted or served) and, for every finding it can repair, restores the state the ledger's records expect:

  modified / missing file    its bytes, by their recorded sha256: from the volume's history store, else from the peer given by --from (a peer whose bytes do not hash to the recorded sha256 is reported and not used)
  missing dir / symlink      made anew; special files with mknod
  type / link-target         the wrong entry is moved to the quarantine, the expected one made anew
  mode / owner / xattr       set in place (xattr values from the history store, which keeps every value set through the mount, or from the peer)
  unexpected                 moved into DIR/.paciofs/quarantine/<time>/<path>: never deleted
  history-missing / -tampered  the version is stored again in the history store, from a file on disk with exactly its bytes (restored first if it was damaged too), else from the peer's history (its .paciofs-history view at the recorded epoch) or its current file; damaged store files go to the quarantine

New content is written beside the volume (in its state directory), fsync'ed, given its mode, owner, xattrs and modification time, and renamed into place: a crash leaves the old entry or the restored one.

Each path repaired gets a 'repair' record on the ledger, signed by your identity (see \`paciofs log\`), naming the findings, the state restored and where the bytes came from. A repair record never changes what verify expects: it proves the disk was brought back to the state the records before it say, and verify keeps judging the disk against those. Repair then runs verify again and reports what is left.

Not repaired, with the reason: anything, when the ledger itself is broken (the records cannot be trusted); a path whose record was tampered with; content or a version no source has with the recorded sha256.

Verify (and so repair) checks old versions in the history store on a first or a --full run; after an incremental verify, use repair --full to find and heal damage to them.

Exit status: 0 nothing to repair or all repaired (verify is clean), 1 something left unrepaired, 2 could not run (the reason is printed).`

  static override examples = [
    {description: 'Repair from the volume\'s own history', command: '<%= config.bin %> <%= command.id %> --volume /srv/archive'},
    {description: 'Show what would be done, change nothing', command: '<%= config.bin %> <%= command.id %> --volume /srv/archive --dry-run'},
    {description: 'Fetch bytes the history lacks from a healthy replica served by `paciofs serve`', command: '<%= config.bin %> <%= command.id %> --volume /srv/archive --from 10.0.0.5:8765 --peer-volume archive'},
    {description: 'Check every stored version too (not only what changed since the last verify) and heal the history store', command: '<%= config.bin %> <%= command.id %> --volume /srv/archive --full'},
    {description: 'Only the invoices, as JSON', command: '<%= config.bin %> <%= command.id %> --volume /srv/archive --path /invoices --json'},
  ]

  static override flags = {
    volume: Flags.string({char: 'v', description: 'volume directory', required: true}),
    from: Flags.string({description: 'HOST:PORT of a server serving a healthy replica of this volume (with --peer-volume)', dependsOn: ['peer-volume']}),
    'peer-volume': Flags.string({description: 'the volume\'s name on the --from server', dependsOn: ['from']}),
    identity: Flags.string({description: 'your Ed25519 key: signs the repair records, and is a member of the volume on the peer'}),
    'trust-new-server-key': Flags.boolean({description: 'accept a changed certificate of the --from server (check its fingerprint first)', default: false}),
    path: Flags.string({description: 'only repair this subtree (a volume path such as /invoices)'}),
    full: Flags.boolean({description: 'run a full verify first (every record and stored version), not an incremental one', default: false}),
    'dry-run': Flags.boolean({description: 'list what would be done; change nothing', default: false}),
    json: Flags.boolean({description: 'print the report as JSON', default: false}),
    'cache-dir': Flags.string({description: 'verify\'s cache directory (see `paciofs verify --help`)'}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Repair)
    let report: RepairReport
    try {
      report = await runRepair({volume: flags.volume, from: flags.from, peerVolume: flags['peer-volume'], identity: flags.identity,
        trustNewServerKey: flags['trust-new-server-key'], path: flags.path, dryRun: flags['dry-run'], full: flags.full, cacheDir: flags['cache-dir']})
    } catch (error) {
      const r = renderError(error, 2)
      this.error(r.message, {exit: 2, suggestions: r.suggestions})
    }

    if (flags.json) this.log(JSON.stringify(report, null, 2))
    else this.render(report)
    if (report.status === 'unrepaired') this.exit(1)
  }

  private render(report: RepairReport): void {
    if (report.items.length > 0) {
      const t = new Table({head: ['path', 'found', report.dryRun ? 'would do' : 'done', 'source', 'result'].map(h => chalk.bold(h)),
        style: {head: [], border: [], compact: true}, wordWrap: true, colWidths: [null, null, 50, null, 50] as unknown as number[]})
      for (const i of report.items) {
        const result = i.reason ? chalk.red(`not repaired: ${i.reason}`) : report.dryRun ? '' : chalk.green(`repaired${i.aside ? ` (old entry: .paciofs/${i.aside})` : ''}`)
        t.push([i.path || chalk.dim('(ledger)'), i.found.join(', '), i.action, i.source ?? '', result])
      }

      this.log(t.toString())
    }

    const left = report.items.filter(i => i.reason !== undefined).length
    const secs = (report.ms / 1000).toFixed(1)
    if (report.dryRun) {
      this.log(report.items.length === 0 ? `${chalk.green('clean')}: nothing to repair`
        : `dry run: ${report.items.length - left} path(s) would be repaired${left ? `, ${chalk.red(`${left} cannot be`)}` : ''}; nothing was changed`)
      return
    }

    if (report.status === 'clean') {
      this.log(`${chalk.green('clean')}: nothing to repair (${secs}s)`)
      return
    }

    const repaired = report.items.filter(i => i.done).length
    const after = report.after
    const summary = `${repaired} path(s) repaired (${(report.bytes / MiB).toFixed(1)} MiB restored), ${left} not, in ${secs}s`
    if (report.status === 'repaired') {
      this.log(`${chalk.green('repaired')}: ${summary}; verify is clean now`)
    } else {
      const now = after ? `; verify now: ${after.status}${after.status === 'clean' ? '' : ` (${after.divergences.filter(d => d.kind !== 'interrupted').length} divergence(s))`}` : ''
      this.log(`${chalk.red('unrepaired')}: ${summary}${now}`)
    }
  }
}
