import {Args, Command, Flags} from '@oclif/core'
import chalk from 'chalk'
import Table from 'cli-table3'
import {historyStats, pathHistory, type VersionEvent} from '../app/history.js'
import {renderError} from '../cli/errors.js'

const MiB = 1024 * 1024

function what(v: VersionEvent): string {
  if (v.op === 'renamed') return `renamed ${v.from} → ${v.to}`
  if (v.op === 'linked') return `linked ${v.from} → ${v.to}`
  if (v.op === 'record-tampered') return chalk.red('record-tampered')
  return v.detail ? `${v.op} (${v.detail})` : v.op
}

export default class History extends Command {
  static override summary = 'List every version of a path: epoch, time, author, size, digest and what happened (following renames).'

  static override description = `Replays the volume's records in ledger order and prints the life of the entry (or entries) that ever had the name PATH: created, modified, renamed from/to, linked, deleted — with the epoch, block time, author, and the size and content digest after each event. Every version listed with a digest can be read back with \`paciofs cat PATH --at EPOCH\`.

--stats prints the history store's accounting instead: versions and chunks kept, bytes stored, and bytes saved by deduplication. Read-only; works while the volume is mounted.`

  static override examples = [
    {description: 'The versions of one invoice', command: '<%= config.bin %> <%= command.id %> /invoices/2026-001.pdf --volume /srv/archive'},
    {description: 'As JSON', command: '<%= config.bin %> <%= command.id %> /invoices/2026-001.pdf --volume /srv/archive --json'},
    {description: 'Storage used by the history', command: '<%= config.bin %> <%= command.id %> --stats --volume /srv/archive'},
  ]

  static override args = {
    path: Args.string({description: 'volume path, such as /invoices/2026-001.pdf', required: false}),
  }

  static override flags = {
    volume: Flags.string({char: 'v', description: 'volume directory', required: true}),
    json: Flags.boolean({description: 'print JSON', default: false}),
    stats: Flags.boolean({description: 'print the history store\'s storage accounting', default: false}),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(History)
    try {
      if (flags.stats) {
        const s = historyStats(flags.volume)
        if (flags.json) this.log(JSON.stringify(s, null, 2))
        else {
          this.log(`${s.manifests} versions in ${s.chunks} chunks: ${(s.storedBytes / MiB).toFixed(1)} MiB stored for ${(s.logicalBytes / MiB).toFixed(1)} MiB of versions; ` +
            `${(s.savedBytes / MiB).toFixed(1)} MiB saved by deduplication`)
        }

        return
      }

      if (!args.path) this.error('give a PATH (or --stats)', {exit: 1})
      const report = await pathHistory(flags.volume, args.path)
      if (flags.json) {
        this.log(JSON.stringify(report, null, 2))
        return
      }

      const t = new Table({head: ['epoch', 'time', 'author', 'event', 'size', 'digest'].map(h => chalk.bold(h)), style: {head: [], border: [], compact: true}})
      for (const v of report.versions) {
        t.push([v.epoch, new Date(v.time).toISOString(), v.author ? `uid ${v.author.uid} (${v.author.member.slice(0, 8)})` : '', what(v),
          v.size ?? '', v.digest ? v.digest.slice(0, 16) + (v.stored === false ? chalk.red(' (not stored)') : '') : ''])
      }

      this.log(t.toString())
      this.log(chalk.dim(`${report.versions.length} event(s); head at epoch ${report.head}`))
    } catch (error) {
      const r = renderError(error)
      this.error(r.message, {exit: r.exit, suggestions: r.suggestions})
    }
  }
}
