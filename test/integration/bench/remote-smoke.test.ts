// bench/remote.ts --smoke: every benchmark of the remote mount once, tiny, so
// that it cannot rot. The numbers are not judged; that each row is there is.
import {expect} from 'chai'
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {run} from '../../helpers/exec.js'
import {REPO} from '../../helpers/paciofs.js'
import {makeTempDir, removeTree} from '../../helpers/tmp.js'
import {fuseMountpoints} from '../../helpers/bindfs.js'

describe('bench/remote.ts --smoke', function () {
  this.timeout(240_000)

  it('runs every remote benchmark once and leaves no mount behind', async () => {
    const dir = await makeTempDir('bench-remote-smoke')
    try {
      const out = join(dir, 'out.json')
      const res = await run(process.execPath, ['--import', 'tsx', join(REPO, 'bench/remote.ts'), '--smoke', '--json', out], {cwd: REPO, timeoutMs: 230_000})
      expect(res.code, res.stderr + res.stdout).to.equal(0)
      const report = JSON.parse(await readFile(out, 'utf8')) as {root: string; rows: Array<{bench: string; remote: number}>}
      expect(report.rows.map(r => r.bench)).to.deep.equal(['seqwrite', 'seqread', 'seqread-warm', 'meta', 'clients', 'local-k', 'tls', 'cpu', 'server-rss'])
      // CPU seconds of a tiny write may round to 0 (the kernel counts in ticks)
      for (const r of report.rows) expect(r.remote, r.bench).to.be.a('number').and.to.be.at.least(r.bench === 'cpu' ? 0 : Number.MIN_VALUE)
      expect(res.stdout).to.match(/\| benchmark \| local \| remote \|/)
      // this run's mounts only (another bench/remote.ts may run beside it)
      expect(report.root).to.match(/paciofs-bench-remote-/)
      expect(fuseMountpoints(await readFile('/proc/mounts', 'utf8')).filter(m => m.startsWith(`${report.root}/`))).to.deep.equal([])
    } finally {
      await removeTree(dir)
    }
  })
})
