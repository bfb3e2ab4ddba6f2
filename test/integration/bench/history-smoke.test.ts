import {expect} from 'chai'
import {spawnSync} from 'node:child_process'
import {fileURLToPath} from 'node:url'
import {childEnv} from '../../helpers/exec.js'

const root = fileURLToPath(new URL('../../../', import.meta.url))

describe('bench/history.ts --smoke', function () {
  this.timeout(180_000)

  it('runs a tiny iteration on real mounts and reports its numbers', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/history.ts', '--smoke', '--json'], {cwd: root, encoding: 'utf8', timeout: 170_000, env: childEnv()})
    expect(r.status, r.stderr + r.stdout).to.equal(0)
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!)
    expect(out.bench).to.equal('history')
    expect(out).to.have.keys('bench', 'sizeMiB', 'fio', 'rewrites', 'rewriteMs', 'historyAddedMiB', 'reads', 'readCurrentMiBps', 'readPastMiBps', 'readViewMiBps',
      'readViewColdMiBps', 'readRuns', 'readRatio', 'readViewRatio', 'readViewColdRatio', 'load')
    expect(out.fio.offMs).to.be.above(0)
    expect(out.fio.onMs).to.be.above(0)
    expect(out.rewrites).to.equal(2)
    expect(out.historyAddedMiB, 'two 1 MiB rewrites add a few chunks, not the file again').to.be.below(6)
    expect(out.readPastMiBps).to.be.above(0)
    expect(out.readViewMiBps).to.be.above(0)
    expect(out.readViewColdMiBps).to.be.above(0)
  })
})
