import {Command, Flags} from '@oclif/core'
import chalk from 'chalk'
import Table from 'cli-table3'
import {headCheckpoint, readLog, type LogEntry} from '../app/log.js'
import {renderError} from '../cli/errors.js'

const short = (s: string, n = 12) => (s.length > n ? s.slice(0, n) : s)

function who(e: LogEntry): string {
  const w = e.record?.who
  return w ? `uid ${w.uid} (${short(w.member, 8)})` : short(e.sender, 8)
}

function what(e: LogEntry): string {
  const r = e.record
  if (!r) return chalk.red('(no journal record)')
  if (r.op === 'member-add' || r.op === 'member-remove') return `member ${r.member ?? '?'}`
  return r.to === undefined ? r.path : `${r.path} → ${r.to}`
}

export default class Log extends Command {
  static override summary = 'Print the ledger\'s records in order: epoch, time, txid, who, operation, path and salted hash.'

  static override description = `Reads the volume's ledger and journal read-only (also while the volume is mounted) and prints one line per record, in ledger order. The hash is what the ledger holds: sha256(salt ‖ record); the journal supplies the record. A hash with no journal record is shown in red.

On a MultiChain volume the epoch is MultiChain's block height and the txid is MultiChain's transaction id followed by :N, the record batch's place in that transaction (only blocks with the volume's confirmations are shown). A local node (multichain:new) is started for as long as log runs, unless the mount's node is running.`

  static override examples = [
    {description: 'Everything on the ledger', command: '<%= config.bin %> <%= command.id %> --volume /srv/archive'},
    {description: 'Blocks 120 to 140 only', command: '<%= config.bin %> <%= command.id %> --volume /srv/archive --since 120 --until 140'},
    {description: 'Invoices, as JSON lines', command: "<%= config.bin %> <%= command.id %> --volume /srv/archive --path '/invoices/**' --json"},
    {description: 'Watch new records arrive', command: '<%= config.bin %> <%= command.id %> --volume /srv/archive --follow'},
    {description: 'Keep a signed checkpoint for a later `verify --checkpoint`', command: '<%= config.bin %> <%= command.id %> --volume /srv/archive --checkpoint > archive-checkpoint.json'},
  ]

  static override flags = {
    volume: Flags.string({char: 'v', description: 'volume directory', required: true}),
    since: Flags.integer({description: 'first block epoch to show', min: 0}),
    until: Flags.integer({description: 'last block epoch to show', min: 0}),
    path: Flags.string({description: 'only records whose path matches this glob (* and ? within a name, ** across directories)'}),
    follow: Flags.boolean({char: 'f', description: 'keep printing records as blocks are committed (Ctrl-C stops)', default: false}),
    json: Flags.boolean({description: 'one JSON object per line instead of a table', default: false}),
    chain: Flags.string({description: 'the chain the volume records on (default: the one volume.json remembers); see `paciofs mount --help`'}),
    checkpoint: Flags.boolean({description: 'print only the signed checkpoint of the ledger\'s head (JSON), for an auditor to keep and pass to `paciofs verify --checkpoint`', default: false}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Log)
    const abort = new AbortController()
    const stop = () => abort.abort()
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    try {
      if (flags.checkpoint) {
        this.log(JSON.stringify(await headCheckpoint(flags.volume, flags.chain), null, 2))
        return
      }

      const entries = readLog({volume: flags.volume, chain: flags.chain, since: flags.since, until: flags.until, path: flags.path, follow: flags.follow, signal: abort.signal,
        onViolation: v => this.warn(`ledger: ${v.kind} at epoch ${v.epoch} (txid ${short(v.txid)}): ${v.detail}`)})
      if (flags.json) {
        for await (const e of entries) this.log(JSON.stringify(e))
        return
      }

      const head = ['epoch', 'time', 'txid', 'who', 'op', 'path', 'hash'].map(h => chalk.bold(h))
      const print = (rows: LogEntry[]) => {
        if (rows.length === 0) return
        const t = new Table({head, style: {head: [], border: [], compact: true}})
        for (const e of rows) t.push([e.epoch, new Date(e.time).toISOString(), short(e.txid), who(e), e.record?.op ?? '?', what(e), short(e.hash, 16)])
        this.log(t.toString())
      }

      let batch: LogEntry[] = []
      let count = 0
      for await (const e of entries) {
        batch.push(e)
        count++
        if (batch.length >= 1000 || flags.follow) {
          print(batch)
          batch = []
        }
      }

      print(batch)
      if (!flags.follow) this.log(chalk.dim(`${count} record${count === 1 ? '' : 's'}`))
    } catch (error) {
      const r = renderError(error)
      this.error(r.message, {exit: r.exit, suggestions: r.suggestions})
    } finally {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
    }
  }
}
