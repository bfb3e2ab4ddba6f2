// The benches answer --help with their own leading doc comment and refuse an
// unknown option in one line with exit 2.
import {expect} from 'chai'
import {fileURLToPath} from 'node:url'
import {leadingDoc} from '../../../bench/args.js'
import {run} from '../../helpers/exec.js'

const root = fileURLToPath(new URL('../../..', import.meta.url))

describe('bench command lines', function () {
  this.timeout(60_000)

  it('leadingDoc takes the text of the leading /** */ comment, without its marks', () => {
    const source = '/**\n * Title.\n *\n *   node bench/x.ts [--smoke]\n */\nimport x from "y"\n/** not this */\n'
    expect(leadingDoc(source)).to.equal('Title.\n\n  node bench/x.ts [--smoke]')
    expect(leadingDoc('// no doc comment\nconst a = 1\n')).to.equal('')
  })

  it('--help prints the usage and exits 0; an unknown option is one line and exit 2', async () => {
    const help = await run(process.execPath, ['--import', 'tsx', 'bench/ledger.ts', '--help'], {cwd: root})
    expect(help.code, help.stderr).to.equal(0)
    expect(help.stdout).to.match(/^Embedded ledger throughput and latency\.\n/)
    expect(help.stdout).to.include('node --import tsx bench/ledger.ts [--seconds 5]')

    const bad = await run(process.execPath, ['--import', 'tsx', 'bench/verify.ts', '--bogus'], {cwd: root})
    expect(bad.code).to.equal(2)
    expect(bad.stderr.trim().split('\n')).to.deep.equal(["verify.ts: Unknown option '--bogus' (--help lists the options)"])
    expect(bad.stdout).to.equal('')
  })
})
