// bench/run.ts --smoke: every benchmark once, tiny sizes, on the raw disk,
// bindfs and a real PacioFS mount, so that a refactor that breaks a benchmark
// fails here. The numbers are not judged; that each one is there is.
import {expect} from 'chai'
import {existsSync} from 'node:fs'
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {fuseMountpoints} from '../../helpers/bindfs.js'
import {run} from '../../helpers/exec.js'
import {REPO} from '../../helpers/paciofs.js'
import {makeTempDir, removeTree} from '../../helpers/tmp.js'

interface Row {
  bench: string
  metric: string
  values: Record<string, number>
  ratioVsBindfs?: number
  target?: string
  met?: boolean | null
}

const ALL = ['disk', 'bindfs', 'paciofs']
/** Each benchmark and the targets every one of its rows must have a number for. */
const EXPECTED: Record<string, string[]> = {
  seqwrite: ALL,
  seqread: ALL,
  meta: ALL,
  randrw: ALL,
  fsync: ALL,
  memory: ['paciofs'],
  ledger: ['paciofs'],
}

describe('bench/run.ts --smoke', function () {
  this.timeout(120_000)
  let dir: string

  before(async () => {
    dir = await makeTempDir('bench-smoke')
  })
  after(async () => removeTree(dir))

  it('runs every benchmark on disk, bindfs and PacioFS, reports a number for each, and leaves nothing mounted', async () => {
    const json = join(dir, 'smoke.json')
    const res = await run(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--smoke', '--json', json], {cwd: REPO, timeoutMs: 110_000})
    expect(res.code, `exit status\n${res.stderr}\n${res.stdout}`).to.equal(0)
    expect(res.stdout).to.match(/\| benchmark \| metric/)

    const report = JSON.parse(await readFile(json, 'utf8')) as {mode: string; rows: Row[]; errors: string[]; env: {root: string}}
    expect(report.mode).to.equal('smoke')
    expect(report.errors).to.deep.equal([])
    for (const [bench, targets] of Object.entries(EXPECTED)) {
      const rows = report.rows.filter(r => r.bench === bench)
      expect(rows, `rows of ${bench}`).to.not.be.empty
      if (bench === 'ledger' && !existsSync(join(REPO, 'bench', 'ledger.ts'))) continue // reported as skipped
      for (const r of rows) {
        for (const t of targets) expect(r.values[t], `${bench} "${r.metric}" on ${t}`).to.be.a('number').and.satisfy(Number.isFinite)
        if (targets.length > 1) expect(r.ratioVsBindfs, `${bench} "${r.metric}" paciofs/bindfs`).to.be.a('number')
        if (r.target) expect(r.met, `${bench} "${r.metric}" is not judged in smoke mode`).to.equal(null)
      }
    }

    const judged = ['seqwrite', 'seqread', 'meta', 'memory', ...(existsSync(join(REPO, 'bench', 'ledger.ts')) ? ['ledger'] : [])]
    expect(new Set(report.rows.filter(r => r.target).map(r => r.bench)), 'benchmarks with a target').to.deep.equal(new Set(judged))
    const mounts = fuseMountpoints(await readFile('/proc/mounts', 'utf8'))
    expect(mounts.filter(m => m.startsWith(report.env.root)), 'mounts left behind').to.deep.equal([])
    expect(existsSync(report.env.root), 'the bench removed its temp dir').to.equal(false)
  })
})
