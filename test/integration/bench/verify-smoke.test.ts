// bench/verify.ts --smoke: every verify benchmark once, tiny sizes, so that a
// refactor that breaks it fails here. The numbers are not judged; that each
// one is there is.
import {expect} from 'chai'
import {existsSync} from 'node:fs'
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {childEnv, run} from '../../helpers/exec.js'
import {REPO} from '../../helpers/paciofs.js'
import {makeTempDir, removeTree} from '../../helpers/tmp.js'

interface Row {
  scenario: string
  metric: string
  value: number
  baseline?: number
  ratio?: number
  target: string
  met: boolean | null
}

const finite = (x: unknown) => typeof x === 'number' && Number.isFinite(x)

describe('bench/verify.ts --smoke', function () {
  this.timeout(60_000)
  let dir: string

  before(async () => {
    dir = await makeTempDir('bench-verify-smoke')
  })
  after(async () => removeTree(dir))

  it('runs every verify benchmark, reports a number for every measurement, and leaves nothing behind', async () => {
    const json = join(dir, 'smoke.json')
    const res = await run(process.execPath, ['--import', 'tsx', 'bench/verify.ts', '--smoke', '--json', json, '--dir', dir],
      {cwd: REPO, env: childEnv(), timeoutMs: 55_000})
    expect(res.code, `exit status\n${res.stderr}\n${res.stdout}`).to.equal(0)
    expect(res.stdout).to.match(/\| scenario \| metric/)

    const report = JSON.parse(await readFile(json, 'utf8')) as {
      mode: string; rows: Row[]; errors: string[]; env: {root: string}
      phases: Record<string, Record<string, number>>; baselineRuns: Record<string, Record<string, number[]>>
    }
    expect(report.mode).to.equal('smoke')
    expect(report.errors).to.deep.equal([])

    const expected: Array<[string, RegExp, boolean]> = [
      ['hashing', /^time, verify --full$/, true], ['hashing', /^time, verify \(incremental\)/, true],
      ['many', /^time, verify --full/, true], ['many', /^time, verify \(incremental\)/, true],
      ['many', /^peak RSS, verify --full/, false], ['many', /^peak RSS, verify \(incremental\)/, false],
      ['history', /^time, verify --full/, true], ['history', /^time, verify \(incremental\)/, true],
    ]
    const judged = report.rows.filter(r => r.target !== '–') // the other rows are for reference (openssl, where installed)
    expect(judged, 'one row per judged measurement').to.have.length(expected.length)
    for (const [scenario, metric] of expected) {
      expect(judged.find(r => r.scenario === scenario && metric.test(r.metric)), `${scenario} ${metric}`).to.not.equal(undefined)
    }

    for (const row of report.rows) {
      const what = `${row.scenario} "${row.metric}"`
      expect(finite(row.value) && row.value > 0, `${what} value ${row.value}`).to.equal(true)
      const hasBaseline = expected.find(([s, m]) => s === row.scenario && m.test(row.metric))?.[2] ?? true
      if (hasBaseline) expect(finite(row.baseline) && finite(row.ratio), `${what} baseline ${row.baseline} and ratio ${row.ratio}`).to.equal(true)
      expect(row.met, `${what} is not judged in smoke mode`).to.equal(null)
    }

    for (const scenario of ['hashing', 'many']) {
      for (const runs of Object.values(report.baselineRuns[scenario])) expect(runs.every(finite), `${scenario} sha256sum runs`).to.equal(true)
    }

    expect(Object.keys(report.phases).sort()).to.deep.equal(['hashing', 'history-A', 'history-B', 'many'])
    for (const [volume, p] of Object.entries(report.phases)) {
      for (const key of ['records', 'files', 'total', 'heapMB']) expect(finite(p[key]), `${volume} ${key}`).to.equal(true)
      const phases = Object.keys(p).filter(k => !['records', 'files', 'total', 'heapMB'].includes(k))
      expect(phases.length, `${volume}: verify's phases`).to.be.greaterThan(2)
      for (const phase of phases) expect(finite(p[phase]), `${volume} phase ${phase}`).to.equal(true)
    }

    expect(existsSync(report.env.root), 'the bench removed its temp dir').to.equal(false)
  })
})
