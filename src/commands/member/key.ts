import {Command, Flags} from '@oclif/core'
import {ownKey} from '../../app/member.js'
import {renderError} from '../../cli/errors.js'

export default class MemberKey extends Command {
  static override summary = 'Print your member key (the public half of your identity), to give to a volume\'s member who adds you.'

  static override description = `Creates your identity on first use (~/.config/paciofs/identity.key, or $PACIOFS_CONFIG_DIR) unless --identity names one.`

  static override examples = [
    {description: 'Your key', command: '<%= config.bin %> <%= command.id %>'},
    {description: 'The key of another identity file', command: '<%= config.bin %> <%= command.id %> --identity ~/.config/paciofs/clerk.key'},
  ]

  static override flags = {
    identity: Flags.string({description: 'an Ed25519 identity key file (default: ~/.config/paciofs/identity.key)'}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(MemberKey)
    try {
      this.log(ownKey(flags.identity))
    } catch (error) {
      const r = renderError(error)
      this.error(r.message, {exit: r.exit, suggestions: r.suggestions})
    }
  }
}
