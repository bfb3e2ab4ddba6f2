import {Command, Flags} from '@oclif/core'
import chalk from 'chalk'
import {runStatus, type StatusResult} from '../app/status.js'
import {renderError} from '../cli/errors.js'

export default class Status extends Command {
  static override summary = 'Show a served volume\'s servers: members, replicas, how far each has applied the ledger, and lag.'

  static override description = `Asks the server at HOST:PORT (the primary, or any replica) about the volume. Lag is counted in ledger epochs (blocks) behind the primary's head; a replica reports its progress to the primary about once a second.`

  static override examples = [
    {description: 'The group of volume archive, as the primary sees it', command: '<%= config.bin %> <%= command.id %> --server files.example:8765 --volume archive'},
    {description: 'A replica\'s view, for scripts', command: '<%= config.bin %> <%= command.id %> --server files.example:8766 --volume archive --json'},
  ]

  static override enableJsonFlag = true
  static override flags = {
    server: Flags.string({description: 'a server of the volume, HOST:PORT', required: true}),
    volume: Flags.string({char: 'v', description: 'the served volume\'s name', required: true}),
    'trust-new-server-key': Flags.boolean({description: 'accept a server key that differs from the pinned one', default: false}),
  }

  async run(): Promise<StatusResult> {
    const {flags} = await this.parse(Status)
    try {
      const r = await runStatus({server: flags.server, volume: flags.volume, trustNewServerKey: flags['trust-new-server-key']})
      if (!this.jsonEnabled()) {
        this.log(`volume ${chalk.bold(r.volume)} (${r.volumeId}) at ${r.server}: ${r.role}, head epoch ${r.head}${r.role === 'replica' ? `, primary's head ${r.primaryHead}` : ''}, accept policy ${r.accept}`)
        this.log(`members (${r.members.length}):`)
        for (const m of r.members) this.log(`  ${m}`)
        this.log('servers:')
        for (const s of r.servers) {
          const applied = s.applied === null ? '-' : String(s.applied)
          const lag = s.lag === null ? '' : s.lag === 0 ? chalk.green(' in sync') : chalk.yellow(` ${s.lag} behind`)
          const seen = s.seenAgoMs === null ? '' : chalk.dim(` (heard ${(s.seenAgoMs / 1000).toFixed(1)} s ago)`)
          this.log(`  ${s.key.slice(0, 16)}…  ${s.state.padEnd(8)} ${(s.address || '-').padEnd(21)} applied ${applied}${lag}${seen}`)
        }
      }

      return r
    } catch (error) {
      const r = renderError(error)
      this.error(r.message, {exit: r.exit, suggestions: r.suggestions})
    }
  }
}
