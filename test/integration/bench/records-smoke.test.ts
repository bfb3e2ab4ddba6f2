// bench/records.ts must keep running: one tiny iteration, numbers not judged.
import {expect} from 'chai'
import {benchRecords} from '../../../bench/records.js'

describe('bench/records.ts (smoke)', function () {
  this.timeout(60_000)
  it('commits every offered record and measures its latency', async () => {
    const r = await benchRecords(0.2, 2000)
    expect(r.records).to.be.greaterThan(0)
    expect(r.committedPerSec).to.be.greaterThan(0)
    expect(r.p99Ms).to.be.greaterThan(0)
    expect(r.maxMs).to.be.at.least(r.p99Ms)
  })
})
