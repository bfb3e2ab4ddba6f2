import {expect} from 'chai'
import {spawnSync} from 'node:child_process'
import {fileURLToPath} from 'node:url'

const root = fileURLToPath(new URL('../../../', import.meta.url))

describe('bench/ledger.ts --smoke', () => {
  it('runs one small iteration for each writer and reports its numbers', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/ledger.ts', '--smoke', '--json'], {cwd: root, encoding: 'utf8', timeout: 60_000})
    expect(r.status, r.stderr).to.equal(0)
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!)
    expect(out.bench).to.equal('ledger')
    expect(out.results.map((x: {writer: string}) => x.writer)).to.deep.equal(['worker', 'inline'])
    for (const res of out.results) {
      expect(res.payloads).to.be.above(0)
      expect(res.blocks).to.be.above(0)
      expect(res.payloadsPerSec).to.be.above(0)
      expect(res).to.have.keys(
        'writer', 'seconds', 'payloads', 'payloadsPerSec', 'blocks', 'avgBlockTxs',
        'appendP50Ms', 'appendP99Ms', 'appendMaxMs', 'loopDelayP99Ms', 'loopDelayMaxMs',
      )
    }
  })
})
