// The benches' command lines: `--help` (or `-h`) prints the bench's own
// leading doc comment — its usage line and method — and exits 0; an option
// parseArgs refuses is one line on stderr and exit 2, not a stack trace.
import fs from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

/** The text of a source file's leading `/** ... *\/` comment, without the comment marks ('' if none). */
export function leadingDoc(source: string): string {
  const m = /^\/\*\*\n([\s\S]*?)\n \*\//.exec(source)
  return m ? m[1].split('\n').map(line => line.replace(/^ \*( |$)/, '')).join('\n') : ''
}

/**
 * `parse()` (the bench's parseArgs call) for the bench at `moduleUrl`
 * (`import.meta.url`), after answering `--help`/`-h` with its leading doc
 * comment; a refused option exits 2 with one line.
 */
export function benchArgs<R>(moduleUrl: string, parse: () => R): R {
  const file = fileURLToPath(moduleUrl)
  const argv = process.argv.slice(2)
  const end = argv.indexOf('--')
  if ((end < 0 ? argv : argv.slice(0, end)).some(a => a === '--help' || a === '-h')) {
    process.stdout.write(`${leadingDoc(fs.readFileSync(file, 'utf8'))}\n`)
    process.exit(0)
  }

  try {
    return parse()
  } catch (error) {
    process.stderr.write(`${path.basename(file)}: ${(error as Error).message} (--help lists the options)\n`)
    process.exit(2)
  }
}
