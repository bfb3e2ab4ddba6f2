// bench/replica.ts --smoke: the replication lag and catch-up benchmarks once,
// tiny, so that they cannot rot. The numbers are not judged; that each is there is.
import {expect} from 'chai'
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {run} from '../../helpers/exec.js'
import {REPO} from '../../helpers/paciofs.js'
import {makeTempDir, removeTree} from '../../helpers/tmp.js'

describe('bench/replica.ts --smoke', function () {
  this.timeout(240_000)

  it('measures lag and catch-up once and leaves no process behind', async () => {
    const dir = await makeTempDir('bench-replica-smoke')
    try {
      const out = join(dir, 'out.json')
      const res = await run(process.execPath, ['--import', 'tsx', join(REPO, 'bench/replica.ts'), '--smoke', '--json', out], {cwd: REPO, timeoutMs: 230_000})
      expect(res.code, res.stderr + res.stdout).to.equal(0)
      const report = JSON.parse(await readFile(out, 'utf8')) as {lag: {p99: number; writes: number}; catchUp: {joinMs: number; ratio: number}}
      expect(report.lag.writes).to.equal(10)
      expect(report.lag.p99).to.be.a('number').and.greaterThan(0)
      expect(report.catchUp.joinMs).to.be.greaterThan(0)
      expect(report.catchUp.ratio).to.be.greaterThan(0)
      expect(res.stdout).to.match(/\| catch-up \|/)
    } finally {
      await removeTree(dir)
    }
  })
})
