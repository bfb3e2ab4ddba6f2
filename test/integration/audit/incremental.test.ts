// verify keeps what it established outside the volume and afterwards checks
// only the history the ledger gained since: same findings, less work.
import {expect} from 'chai'
import fs from 'node:fs'
import {join} from 'node:path'
import {runOk} from '../../helpers/exec.js'
import {REPO, mountPacio, paciofs, scratch} from '../../helpers/paciofs.js'

describe('verify: the verified index (incremental verify)', function () {
  this.timeout(120_000)
  let area: Awaited<ReturnType<typeof scratch>>
  let cacheDir: string

  before(async () => {
    area = await scratch('incremental')
    cacheDir = join(area.dir, 'cache')
  })
  after(async () => area?.dispose())

  const verify = async (...extra: string[]) => {
    const res = await paciofs(['verify', '--volume', area.volume, '--json', ...extra], {cacheDir})
    expect(res.stdout, res.stderr).to.match(/^\{/)
    return {code: res.code, report: JSON.parse(res.stdout)}
  }

  const session = async (work: (mnt: string) => Promise<void>) => {
    const m = await mountPacio(area.volume, area.mnt)
    try {
      await work(area.mnt)
    } finally {
      expect(await m.stop()).to.equal(0)
    }
  }

  it('checks only the new history, with the same verdicts as a full verify', async () => {
    await session(async mnt => {
      fs.mkdirSync(join(mnt, 'dir'))
      for (let i = 0; i < 20; i++) fs.writeFileSync(join(mnt, 'dir', `f${i}`), `v1 ${i}`)
    })
    const first = await verify()
    expect(first.report.divergences).to.deep.equal([])
    expect(first.report.incremental).to.equal(undefined)

    await session(async mnt => {
      for (let i = 0; i < 20; i += 2) fs.writeFileSync(join(mnt, 'dir', `f${i}`), `v2 ${i}`)
      fs.renameSync(join(mnt, 'dir'), join(mnt, 'moved'))
      fs.unlinkSync(join(mnt, 'moved', 'f1'))
      fs.linkSync(join(mnt, 'moved', 'f2'), join(mnt, 'hard'))
    })
    const second = await verify()
    expect(second.report.divergences).to.deep.equal([])
    expect(second.report.incremental.since).to.equal(first.report.head.epoch)
    expect(second.report.checked.records).to.be.lessThan(first.report.checked.records + 40)
    const cacheFile = join(cacheDir, fs.readdirSync(cacheDir).find(n => n.endsWith('.json'))!)
    const before = fs.statSync(cacheFile)
    const again = await verify()
    expect(again.report.divergences).to.deep.equal([])
    expect(again.report.checked.records, 'nothing new on the ledger').to.equal(0)
    expect(fs.statSync(cacheFile).mtimeMs, 'an unchanged head leaves the index as it is').to.equal(before.mtimeMs)
    const full = await verify('--full')
    expect(full.report.divergences).to.deep.equal([])
    expect(full.report.checked.records).to.be.greaterThan(second.report.checked.records)
  })

  it('still catches a changed file, and a forged new record', async () => {
    fs.writeFileSync(join(area.volume, 'moved', 'f3'), 'forged')
    const {code, report} = await verify()
    expect(report.incremental, 'incremental run').to.not.equal(undefined)
    expect(report.divergences.map((d: {kind: string; path: string}) => `${d.kind} ${d.path}`)).to.deep.equal(['modified /moved/f3'])
    expect(code).to.equal(1)
    fs.writeFileSync(join(area.volume, 'moved', 'f3'), 'v1 3') // put it back

    await session(async mnt => fs.writeFileSync(join(mnt, 'late'), 'late'))
    const db = join(area.volume, '.paciofs', 'journal.db')
    await runOk('sqlite3', [db, "UPDATE records SET salt = zeroblob(32) WHERE path = '/late' AND op = 'write'"])
    const forged = await verify()
    expect(forged.report.divergences.map((d: {kind: string; path: string}) => `${d.kind} ${d.path}`)).to.deep.equal(['record-tampered /late'])
    expect(forged.code).to.equal(1)
  })

  it('a ledger rewritten after a verify is caught without a checkpoint file', async () => {
    await runOk('sqlite3', [join(area.volume, '.paciofs', 'journal.db'), "DELETE FROM records WHERE path = '/late'"])
    fs.rmSync(join(area.volume, 'late'))
    await runOk(process.execPath, ['--import', 'tsx', join(REPO, 'test', 'integration', 'audit', 'rebuild-ledger.ts'), area.volume], {cwd: REPO})
    const {code, report} = await verify()
    expect(report.divergences.map((d: {kind: string}) => d.kind)).to.include('checkpoint-inconsistent')
    expect(code).to.equal(1)
  })
})
