/** The user's identity key: given with --identity, or created on first use in the user's config directory. */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {generateIdentity, loadIdentity, saveIdentity, type Identity} from '../crypto/sign.js'
import {PacioError} from '../errors.js'

export function configDir(): string {
  if (process.env.PACIOFS_CONFIG_DIR) return process.env.PACIOFS_CONFIG_DIR
  const base = process.env.XDG_CONFIG_HOME ?? path.join(os.homedir(), '.config')
  return path.join(base, 'paciofs')
}

export function loadOrCreateIdentity(file?: string): Identity {
  const target = file ?? path.join(configDir(), 'identity.key')
  if (!fs.existsSync(target)) {
    if (file) throw new PacioError('EINPUT', `identity file ${file} does not exist`)
    fs.mkdirSync(path.dirname(target), {recursive: true, mode: 0o700})
    saveIdentity(target, generateIdentity())
  }

  try {
    return loadIdentity(target)
  } catch (error) {
    throw new PacioError('EINPUT', (error as Error).message, {cause: error})
  }
}
