import {Command, Flags} from '@oclif/core'
import chalk from 'chalk'
import Table from 'cli-table3'
import {readCheckpointFile, verifyVolume} from '../audit/verify.js'
import type {Divergence, VerifyReport} from '../audit/types.js'
import {renderError} from '../cli/errors.js'
import {checkChoice, openVolumeLedger} from '../app/ledger.js'
import {layoutOf, readMeta} from '../volume/layout.js'

const MiB = 1024 * 1024

function progressLine(p: {files: number; bytes: number; expectedBytes: number}, started: number): string {
  const secs = Math.max(0.001, (Date.now() - started) / 1000)
  const rate = p.bytes / secs
  const left = Math.max(0, p.expectedBytes - p.bytes)
  const eta = rate > 0 ? Math.ceil(left / rate) : 0
  return `scanning: ${p.files} files, ${(p.bytes / MiB).toFixed(0)}/${(p.expectedBytes / MiB).toFixed(0)} MiB, ${(rate / MiB).toFixed(0)} MiB/s, ETA ${eta}s`
}

function colour(kind: Divergence['kind']): string {
  return kind === 'interrupted' ? chalk.yellow(kind) : chalk.red(kind)
}

export default class Verify extends Command {
  static override summary = 'Check the volume against its ledger and report, path by path, what no longer matches.'

  static override description = `Checks the ledger (block links, Merkle roots, signatures, each sender's sequence), checks every journal record against its salted hash on the ledger, replays the records into the expected tree, scans and hashes the volume's files, and reports every divergence with the record that says what should be there.

Exit status: 0 clean (also when the only findings are writes interrupted by a crash), 1 divergent, 2 could not verify (the reason is printed). Opens everything read-only and never writes to the volume; the volume must not be mounted.

Each verify keeps what it established (the expected tree at the ledger's head, and that block's signed checkpoint) in a cache outside the volume; the next verify checks that the ledger still extends it and then only looks at the history added since, so its cost grows with the volume, not with its history. --full checks every block and record again (and catches, for example, an old journal record edited after an earlier verify).

On a MultiChain volume, verify checks the chain as a node of it has it: block heights without gaps and each block's link to its predecessor, the chain's genesis block against the one the volume was created on, and checkpoints against the block hash at their height (MultiChain itself checks its blocks' signatures and proof of work); everything above the ledger is checked as for the embedded ledger.

Keep the output of \`paciofs log --checkpoint\` somewhere safe and pass it with --checkpoint later: a ledger that was truncated, forked or rewritten from genesis (even re-signed with a new key) is then caught.`

  static override examples = [
    {description: 'Verify a volume', command: '<%= config.bin %> <%= command.id %> --volume /srv/archive'},
    {description: 'Only the invoices, as JSON', command: '<%= config.bin %> <%= command.id %> --volume /srv/archive --path /invoices --json'},
    {description: 'Check that the ledger still extends a checkpoint kept earlier', command: '<%= config.bin %> <%= command.id %> --volume /srv/archive --checkpoint ~/audit/archive-2026-11.json'},
  ]

  static override flags = {
    volume: Flags.string({char: 'v', description: 'volume directory', required: true}),
    path: Flags.string({description: 'only check and report this subtree (a volume path such as /invoices)'}),
    checkpoint: Flags.string({description: 'a checkpoint file from `paciofs log --checkpoint` that the ledger must extend'}),
    json: Flags.boolean({description: 'print the report as JSON', default: false}),
    threads: Flags.integer({description: 'hashing threads (default: one per core)', min: 1, max: 64}),
    full: Flags.boolean({description: 'check the whole history again instead of only what the ledger gained since the last verify', default: false}),
    chain: Flags.string({description: 'the chain the volume records on (default: the one volume.json remembers); see `paciofs mount --help`'}),
    'cache-dir': Flags.string({description: 'where verify keeps what it established, outside the volume (default: ~/.cache/paciofs/verify)'}),
  }

  async run(): Promise<void> {
    // No --optimize-for-size: it kept the peak RSS of 100,000 files near 225 MB instead of ~330 MB, but cost a
    // quarter of the CPU; bin/run.js's --max-semi-space-size=2 bounds the young generations instead (264 MB,
    // and 5.9 s instead of 7.5-8.2 s for `verify --full`, side by side at load 3.5-5.5)
    const {flags} = await this.parse(Verify)
    let report: VerifyReport
    const started = Date.now()
    const tty = Boolean(process.stderr.isTTY) && !flags.json
    let lastDraw = 0
    try {
      if (flags.chain !== undefined) {
        const layout = layoutOf(flags.volume)
        checkChoice(layout, readMeta(layout), {chain: flags.chain})
      }
      report = await verifyVolume({
        volume: flags.volume,
        openLedger: (layout, meta) => openVolumeLedger(layout, meta, {write: false, tailBlocks: 0}),
        path: flags.path,
        checkpoint: flags.checkpoint ? readCheckpointFile(flags.checkpoint) : undefined,
        threads: flags.threads,
        full: flags.full,
        cacheDir: flags['cache-dir'],
        onProgress: tty ? p => {
          if (Date.now() - lastDraw < 200) return
          lastDraw = Date.now()
          process.stderr.write(`\r${progressLine(p, started)}\u001B[K`)
        } : undefined,
      })
    } catch (error) {
      if (tty) process.stderr.write('\r\u001B[K')
      const r = renderError(error, 2)
      this.error(r.message, {exit: 2, suggestions: r.suggestions})
    }

    if (tty) process.stderr.write('\r\u001B[K')
    if (flags.json) {
      this.log(JSON.stringify(report, null, 2))
    } else {
      if (report.divergences.length > 0) {
        const t = new Table({head: ['path', 'kind', 'expected', 'found', 'epoch', 'txid', 'author'].map(h => chalk.bold(h)), style: {head: [], border: [], compact: true}, wordWrap: true})
        for (const d of report.divergences) {
          t.push([d.path || chalk.dim('(ledger)'), colour(d.kind), d.expected ?? '', d.found ?? '', d.record?.epoch ?? '', (d.record?.txid ?? '').slice(0, 12),
            d.record?.author ? `${d.record.uid === undefined ? '' : `uid ${d.record.uid} `}${d.record.author.slice(0, 8)}` : ''])
          if (d.detail && !d.path) t.push([{colSpan: 7, content: chalk.dim(d.detail)}])
        }

        this.log(t.toString())
      }

      const c = report.checked
      const since = report.incremental ? ` (history since epoch ${report.incremental.since}; --full for all)` : ''
      const summary = `${c.blocks} blocks${since}, ${c.records} records, ${c.files} files (${(c.bytes / MiB).toFixed(1)} MiB) in ${(report.ms / 1000).toFixed(1)}s`
      const serious = report.divergences.filter(d => d.kind !== 'interrupted').length
      const interrupted = report.divergences.length - serious
      this.log(report.status === 'clean'
        ? `${chalk.green('clean')}: ${summary}${interrupted ? `; ${interrupted} write(s) interrupted by a crash` : ''}`
        : `${chalk.red('divergent')}: ${serious} divergence(s)${interrupted ? ` and ${interrupted} interrupted write(s)` : ''}; ${summary}`)
    }

    if (report.status === 'divergent') this.exit(1)
  }
}
