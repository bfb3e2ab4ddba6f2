// The streaming servers' malloc settings (src/server/malloc.ts, native tuneMalloc): applied unless the
// environment sets them, refused for bad input, and with them freed large buffers are reused instead of
// being mapped (and faulted in) afresh. Each measurement runs in a child process of its own.
import {expect} from 'chai'
import {spawnSync} from 'node:child_process'
import {tuneMallocForStreams} from '../../../src/server/malloc.js'
import {sys} from '../../../src/volume/sys.js'

/** Minor page faults of 400 buffers of 256 KiB and 1 MiB filled in a fresh Node process (a GC every 4), tuned or not. */
function faults(tuned: boolean): number {
  const script = `
    import {readFileSync} from 'node:fs'
    import {tuneMallocForStreams} from './src/server/malloc.ts'
    if (${tuned} && !tuneMallocForStreams()) throw new Error('not applied')
    const flt = () => Number(readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[7])
    const src = Buffer.alloc(1024 * 1024 + 5, 1)
    const f0 = flt()
    for (let i = 0; i < 400; i++) {
      const b = Buffer.allocUnsafe(i % 2 ? 256 * 1024 : 1024 * 1024 + 5)
      src.copy(b, 0, 0, b.length)
      if (i % 4 === 0) globalThis.gc()
    }
    process.stdout.write(String(flt() - f0))`
  const env = {...process.env}
  for (const k of Object.keys(env)) if (k.startsWith('MALLOC_')) delete env[k]
  delete env.NODE_OPTIONS
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', script], {env, encoding: 'utf8'})
  if (r.status !== 0) throw new Error(r.stderr)
  return Number(r.stdout)
}

describe('tuneMallocForStreams', () => {
  it('leaves the settings to the environment when it gives any of them', () => {
    expect(tuneMallocForStreams({MALLOC_TOP_PAD_: '0'})).to.equal(false)
    expect(tuneMallocForStreams({MALLOC_MMAP_THRESHOLD_: '131072'})).to.equal(false)
  })

  it('refuses sizes that are not byte counts', () => {
    expect(() => sys.tuneMalloc(-1, 0, 0)).to.throw(/byte counts/)
    expect(() => (sys.tuneMalloc as (...a: unknown[]) => boolean)(1, 'x', 0)).to.throw(/byte counts/)
  })

  it('keeps freed large buffers for reuse: far fewer page faults than glibc by default', function () {
    this.timeout(60_000)
    const plain = faults(false)
    const tuned = faults(true)
    if (process.env.PACIOFS_TEST_VERBOSE) console.log(`page faults: ${plain} by default, ${tuned} tuned`)
    expect(plain).to.be.greaterThan(1000) // 64 faults per fresh 256 KiB buffer
    expect(tuned).to.be.lessThan(plain * 0.75)
  })
})
