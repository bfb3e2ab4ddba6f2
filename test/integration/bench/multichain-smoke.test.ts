// bench/multichain.ts must keep running: one tiny iteration on the fake node, numbers not judged.
import {expect} from 'chai'
import {benchMultiChain} from '../../../bench/multichain.js'

describe('bench/multichain.ts (smoke)', function () {
  this.timeout(120_000)
  it('measures records/s by batch size against the baseline, and time to first confirmation', async () => {
    const r = await benchMultiChain({seconds: 2.5, batches: [1, 64], txRate: 1500, blockTimes: [50], samples: 3, real: false})
    expect(r.throughput.map(t => `${t.path}:${t.batch}`)).to.deep.equal(['driver:1', 'driver:64', 'driver:1', 'pipeline:10000'])
    for (const t of r.throughput) {
      expect(t.records, `${t.path} batch ${t.batch}`).to.be.greaterThan(0)
      expect(t.transactions).to.be.greaterThan(0)
    }
    expect(r.latency).to.have.length(1)
    expect(r.latency[0].p50Ms).to.be.greaterThan(0)
  })
})
