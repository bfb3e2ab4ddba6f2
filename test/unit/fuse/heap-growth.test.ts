import {expect} from 'chai'
import {run} from '../../helpers/exec.js'
import {REPO} from '../../helpers/paciofs.js'
import {limitHeapGrowth} from '../../../src/fuse/mount.js'

const MOUNT_TS = new URL('../../../src/fuse/mount.ts', import.meta.url).href

/**
 * A process like a mount's: young generation capped, a live heap of about
 * 16 MB, and objects that outlive a few scavenges (promoted), then die.
 * Prints the largest heapTotal seen, in bytes.
 */
const CHURN = `
const {limitHeapGrowth} = await import(${JSON.stringify(MOUNT_TS)})
if (process.argv[1] === 'limit' && !limitHeapGrowth()) throw new Error('not applied')
const live = []
for (let i = 0; i < 160_000; i++) live.push({a: i, b: 'x' + i, c: [i, i + 1]})
const ring = new Array(20_000)
let max = 0
for (let i = 0; i < 2_000_000; i++) {
  ring[i % ring.length] = {i, s: 'y' + i, arr: [i, i, i]}
  if (i % 10_000 === 0) max = Math.max(max, process.memoryUsage().heapTotal)
}
process.stdout.write(String(max + live.length * 0))
`

async function peakHeap(mode: 'limit' | 'default'): Promise<number> {
  const r = await run(process.execPath, ['--max-semi-space-size=2', '--import', 'tsx', '--input-type=module', '-e', CHURN, mode], {cwd: REPO, timeoutMs: 60_000})
  expect(r.code, r.stderr).to.equal(0)
  return Number(r.stdout)
}

describe('a mount limits how far V8 grows its old generation between full collections', () => {
  it('with the limit, promoted garbage keeps the heap well below where V8 would let it grow', async () => {
    const unlimited = await peakHeap('default')
    const limited = await peakHeap('limit')
    expect(limited, `limited ${limited}, default ${unlimited}`).to.be.below(unlimited * 0.6)
  })

  it('leaves the setting to node\'s own options or NODE_OPTIONS when they give one', () => {
    expect(limitHeapGrowth(['--heap-growing-percent=50'], {})).to.equal(false)
    expect(limitHeapGrowth([], {NODE_OPTIONS: '--max-old-space-size=100 --heap_growing_percent=50'})).to.equal(false)
  })
})
