/**
 * serve and join start node again with a larger young generation.
 *
 * bin/run.js caps V8's semi-spaces at 2 MB so a mount stays small (issue 2's
 * RSS targets). A server moves 256 KiB-1 MiB messages without pause: with the
 * cap they are promoted before they die and full collections follow (a
 * replica catching up 256 MiB ran 12 full collections instead of 2). Node
 * reads the option only at start, so these commands replace the process with
 * node and the same arguments but SERVER_SEMI_SPACE_MB — execv(2): same pid,
 * so signals, kill -9 and a parent's wait see one process.
 */
import {sys} from '../volume/sys.js'

export const SERVER_SEMI_SPACE_MB = 16
const COMMANDS = new Set(['serve', 'join'])
const OPTION = '--max-semi-space-size='

/** node's options for a server command, or undefined when they already allow SERVER_SEMI_SPACE_MB */
export function serverExecArgv(execArgv: readonly string[]): string[] | undefined {
  const at = execArgv.findIndex(a => a.startsWith(OPTION))
  if (at < 0) return undefined // node's default (16 MB on 64-bit) already
  const mb = Number(execArgv[at].slice(OPTION.length))
  if (Number.isFinite(mb) && mb >= SERVER_SEMI_SPACE_MB) return undefined
  const out = [...execArgv]
  out[at] = `${OPTION}${SERVER_SEMI_SPACE_MB}`
  return out
}

/** the argv to exec for `node [execArgv] script command ...`, or undefined to go on as we are */
export function relaunchArgv(argv: readonly string[], execArgv: readonly string[], node = process.execPath): string[] | undefined {
  if (!COMMANDS.has(argv[2] ?? '')) return undefined
  const options = serverExecArgv(execArgv)
  return options && [node, ...options, ...argv.slice(1)]
}

/** called first by bin/run.js: returns only if no relaunch is needed */
export function relaunchIfServer(): void {
  const args = relaunchArgv(process.argv, process.execArgv)
  if (args) sys.execv(process.execPath, args)
}
