// kill -9 of the mount in the middle of a write workload: after
// `fusermount -u` and a remount, every operation that had returned to its
// caller has its record on the ledger, exactly once.
import {expect} from 'chai'
import {spawn} from 'node:child_process'
import {createHash} from 'node:crypto'
import {childEnv} from '../../helpers/exec.js'
import {mountPacio, paciofs, scratch} from '../../helpers/paciofs.js'

const WRITER = `
const fs = require('fs'), dir = process.argv[1]
fs.mkdirSync(dir, {recursive: true})
for (let i = 0; ; i++) {
  const p = dir + '/f' + i
  try {
    fs.writeFileSync(p, 'content of file ' + i + '\\n'.repeat(i % 50))
  } catch (e) { process.exit(0) }
  process.stdout.write('ok ' + i + '\\n')
}`

describe('kill -9 of the mount during a write workload', function () {
  this.timeout(120_000)

  it('loses no record of an acknowledged operation and duplicates none', async () => {
    const area = await scratch('crash')
    try {
      const first = await mountPacio(area.volume, area.mnt)
      const writer = spawn(process.execPath, ['-e', WRITER, `${area.mnt}/crash`], {env: childEnv(), stdio: ['ignore', 'pipe', 'ignore']})
      let out = ''
      writer.stdout.on('data', d => (out += d))
      const writerDone = new Promise(r => writer.on('close', r))
      await new Promise(r => setTimeout(r, 1500))
      await first.kill() // SIGKILL, then fusermount -uz
      await writerDone
      const acked = out.split('\n').filter(l => l.startsWith('ok ')).map(l => Number(l.slice(3)))
      expect(acked.length, 'files written before the kill').to.be.greaterThan(20)

      const second = await mountPacio(area.volume, area.mnt)
      expect(await second.stop()).to.equal(0)

      const res = await paciofs(['log', '--volume', area.volume, '--json'])
      expect(res.code, res.stderr).to.equal(0)
      const entries = res.stdout.trim().split('\n').map(l => JSON.parse(l))
      const hashes = entries.map(e => e.hash)
      expect(new Set(hashes).size, 'no record twice on the ledger').to.equal(hashes.length)
      const byPath = new Map<string, string[]>()
      for (const e of entries) byPath.set(e.record.path, [...(byPath.get(e.record.path) ?? []), e.record.op])
      for (const i of acked) {
        const ops = byPath.get(`/crash/f${i}`) ?? []
        expect(ops, `records of acknowledged /crash/f${i}`).to.include('create')
      }

      // verify: clean, except for writes cut off by the kill (reported as interrupted, never as tampering)
      const v = await paciofs(['verify', '--volume', area.volume, '--json'])
      const report = JSON.parse(v.stdout)
      expect(report.divergences.filter((d: {kind: string}) => d.kind !== 'interrupted'), v.stdout.slice(0, 2000)).to.deep.equal([])
      expect(v.code).to.equal(0)

      // a file whose close had returned before the one after it started also has its digest recorded
      for (const i of acked.slice(0, -1)) {
        const body = 'content of file ' + i + '\n'.repeat(i % 50)
        const digest = createHash('sha256').update(body).digest('hex')
        const write = entries.find(e => e.record.path === `/crash/f${i}` && e.record.op === 'write')
        if (write) expect(write.record.digest).to.equal(digest)
      }
    } finally {
      await area.dispose()
    }
  })
})
