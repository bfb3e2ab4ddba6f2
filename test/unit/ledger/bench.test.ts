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
      expect(res.bytesWrittenPerPayload).to.be.above(res.payloads > 0 ? 64 : 0) // at least its bytes went to the WAL
      expect(res.cpuUsPerPayload).to.be.above(0)
      expect(res).to.have.keys(
        'writer', 'seconds', 'payloads', 'offeredPerSec', 'payloadsPerSec', 'blocks', 'avgBlockTxs',
        'appendP50Ms', 'appendP99Ms', 'appendMaxMs', 'loopDelayP99Ms', 'loopDelayMaxMs', 'bytesWrittenPerPayload', 'cpuUsPerPayload',
      )
    }
  })

  it('offers a fixed rate in open loop, whatever the commits take', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/ledger.ts', '--smoke', '--json', '--rate', '1', '--writer', 'worker'], {cwd: root, encoding: 'utf8', timeout: 60_000})
    expect(r.status, r.stderr).to.equal(0)
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!)
    expect(out.options.rate).to.equal(2000) // the smoke run's rate
    const [res] = out.results
    expect(res.offeredPerSec).to.equal(2000) // 40 batches of 10 in 0.2 s, each on time or late, none skipped
    expect(res.payloads).to.equal(400) // all of them committed
  })
})
