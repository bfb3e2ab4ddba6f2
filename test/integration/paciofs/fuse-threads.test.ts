// libfuse 2 starts a FUSE thread whenever none is idle and ends one when more
// than 10 are; each thread that calls into JS needs thread locals with a
// uv_async_t on the mount's loop. A thread that ends leaves its locals to the
// next one, so bursts of concurrent operations do not add handles to the
// loop (every wake-up walks them) for the life of the mount.
import {expect} from 'chai'
import fs from 'node:fs'
import {join} from 'node:path'
import {runOk} from '../../helpers/exec.js'
import {mountPacio, scratch, type PacioMount} from '../../helpers/paciofs.js'

const FILES = 48
const ROUNDS = 6

describe('PacioFS mount: FUSE threads', function () {
  this.timeout(180_000)
  let area: Awaited<ReturnType<typeof scratch>>
  let mount: PacioMount | undefined

  before(async () => {
    area = await scratch('fuse-threads')
  })

  after(async () => {
    if (mount && (await mount.stop()) !== 0) console.error(mount.output())
    await area?.dispose()
  })

  it('threads that end leave their locals to new ones: bursts of concurrent fsyncs reuse them', async () => {
    const stats = join(area.dir, 'threads.json')
    mount = await mountPacio(area.volume, area.mnt, {env: {PACIOFS_PASSTHROUGH_STATS: stats}})
    const dir = join(area.mnt, 'burst')
    fs.mkdirSync(dir)
    for (let i = 0; i < FILES; i++) fs.writeFileSync(join(dir, `f${i}`), `file ${i}\n`)
    // each round: FILES processes at once, each writes and fsyncs its file
    // (the fsync waits for the record's block), then the threads go idle
    const burst = `for i in $(seq 0 ${FILES - 1}); do (echo "$i $1" >> f$i && sync f$i) & done; wait`
    for (let r = 0; r < ROUNDS; r++) {
      await runOk('bash', ['-c', burst, 'burst', String(r)], {cwd: dir, timeoutMs: 60_000})
      await new Promise(resolve => setTimeout(resolve, 300))
    }

    const code = await mount.stop()
    mount = undefined
    expect(code).to.equal(0)
    const {threads} = JSON.parse(fs.readFileSync(stats, 'utf8')) as {threads: {made: number; reused: number}}
    // more threads than 11 ran at once in the bursts (else none would end) ...
    expect(threads.made + threads.reused, JSON.stringify(threads)).to.be.above(11)
    // ... and the ones started after others ended took over their locals
    expect(threads.reused, JSON.stringify(threads)).to.be.above(0)
    expect(threads.made, JSON.stringify(threads)).to.be.at.most(FILES + 12)
    for (let i = 0; i < FILES; i++) expect(fs.readFileSync(join(area.volume, 'burst', `f${i}`), 'utf8').split('\n').length).to.equal(ROUNDS + 2)
  })
})
