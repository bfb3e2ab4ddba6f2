import {Args, Command, Flags} from '@oclif/core'
import {catAt, parseEpoch} from '../app/history.js'
import {renderError} from '../cli/errors.js'

export default class Cat extends Command {
  static override summary = 'Print a file as it was at an epoch, checked against its record on the ledger.'

  static override description = `Finds the version of PATH that was current at block EPOCH (after every record up to and including it), checks that the record naming its content matches its salted hash on the ledger, and that the stored bytes match that record's digest — and only then writes them to stdout (or to --to FILE). A version that cannot be checked is refused with the reason, and nothing is written. Read-only; works while the volume is mounted.`

  static override examples = [
    {description: 'An invoice as it was at epoch 120', command: '<%= config.bin %> <%= command.id %> /invoices/2026-001.pdf --at 120 --volume /srv/archive > old.pdf'},
    {description: 'Write it to a file instead', command: '<%= config.bin %> <%= command.id %> /invoices/2026-001.pdf --at 120 --volume /srv/archive --to /tmp/old.pdf'},
  ]

  static override args = {
    path: Args.string({description: 'volume path, such as /invoices/2026-001.pdf', required: true}),
  }

  static override flags = {
    volume: Flags.string({char: 'v', description: 'volume directory', required: true}),
    at: Flags.string({description: 'block epoch (default: the ledger\'s head)'}),
    to: Flags.string({description: 'write the content to this file instead of stdout (replaced only once the bytes are checked)'}),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(Cat)
    try {
      await catAt({volume: flags.volume, path: args.path, at: parseEpoch(flags.at), to: flags.to})
    } catch (error) {
      const r = renderError(error)
      this.error(r.message, {exit: r.exit, suggestions: r.suggestions})
    }
  }
}
