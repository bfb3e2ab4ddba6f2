// fio's sequential write and read through a real mount take the binding's
// passthrough (read/write on the FUSE threads), and what is recorded is
// still exact: the write record's digest is the sha256 of the file.
import {expect} from 'chai'
import {createHash} from 'node:crypto'
import fs from 'node:fs'
import {join} from 'node:path'
import {runOk} from '../../helpers/exec.js'
import {mountPacio, paciofs, scratch, type PacioMount} from '../../helpers/paciofs.js'

describe('PacioFS mount: read/write and metadata passthrough', function () {
  this.timeout(180_000)
  let area: Awaited<ReturnType<typeof scratch>>
  let mount: PacioMount | undefined

  before(async () => {
    area = await scratch('passthrough')
  })

  after(async () => {
    if (mount && (await mount.stop()) !== 0) console.error(mount.output())
    await area?.dispose()
  })

  it('fio sequential write and read are served on the FUSE threads; records and verify stay exact', async () => {
    const stats = join(area.dir, 'passthrough.json')
    mount = await mountPacio(area.volume, area.mnt, {env: {PACIOFS_PASSTHROUGH_STATS: stats}})
    const dir = join(area.mnt, 'seq')
    fs.mkdirSync(dir)
    await runOk('fio', ['--name=seq', '--bs=1M', '--size=32M', '--readwrite=write', '--end_fsync=1', `--directory=${dir}`, '--output-format=terse'], {timeoutMs: 120_000})
    await runOk('fio', ['--name=seq', '--bs=1M', '--size=32M', '--readwrite=read', `--directory=${dir}`, '--output-format=terse'], {timeoutMs: 120_000})
    const [name] = fs.readdirSync(dir)
    const digest = createHash('sha256').update(fs.readFileSync(join(area.volume, 'seq', name))).digest('hex')
    const code = await mount.stop()
    mount = undefined
    expect(code).to.equal(0)

    // 32 MiB in requests of at most 128 KiB: at least 256 writes, all but the first (announced by JS) on the FUSE threads
    const served = JSON.parse(fs.readFileSync(stats, 'utf8')) as {fastReads: number; fastWrites: number; slowWrites: number}
    expect(served.fastWrites, JSON.stringify(served)).to.be.at.least(255)
    expect(served.slowWrites, JSON.stringify(served)).to.be.at.most(2)
    expect(served.fastReads, JSON.stringify(served)).to.be.at.least(256)

    const log = await paciofs(['log', '--volume', area.volume, '--path', `/seq/${name}`, '--json'])
    expect(log.code, log.stderr).to.equal(0)
    const writes = log.stdout.trim().split('\n').map(l => JSON.parse(l).record).filter(r => r.op === 'write')
    expect(writes.at(-1)).to.include({size: 32 * 1024 * 1024, digest})
    const res = await paciofs(['verify', '--volume', area.volume, '--json'], {timeoutMs: 120_000})
    const report = JSON.parse(res.stdout)
    expect(report.divergences).to.deep.equal([])
    expect(report.status).to.equal('clean')
  })

  it('read-only metadata is answered by the binding, with what the backing directory says; the state dir stays hidden', async () => {
    const stats = join(area.dir, 'meta.json')
    mount = await mountPacio(area.volume, area.mnt, {env: {PACIOFS_PASSTHROUGH_STATS: stats}})
    const m = (p: string) => join(area.mnt, p)
    const b = (p: string) => join(area.volume, p)
    fs.mkdirSync(m('meta'))
    fs.writeFileSync(m('meta/a'), 'hello')
    fs.writeFileSync(m('meta/.dot'), 'dot')
    fs.symlinkSync('a', m('meta/link'))
    fs.chmodSync(m('meta/a'), 0o640)
    for (const name of ['meta', 'meta/a', 'meta/.dot', 'meta/link']) {
      const got = fs.lstatSync(m(name), {bigint: true})
      const want = fs.lstatSync(b(name), {bigint: true})
      for (const k of ['ino', 'mode', 'nlink', 'uid', 'gid', 'size', 'mtimeNs', 'ctimeNs'] as const) expect(got[k], `${name} ${k}`).to.equal(want[k])
    }

    expect(fs.readlinkSync(m('meta/link'))).to.equal('a')
    expect(fs.readFileSync(m('meta/link'), 'utf8')).to.equal('hello')
    expect(() => fs.lstatSync(m('meta/missing'))).to.throw().with.property('code', 'ENOENT')
    expect(() => fs.lstatSync(m('.paciofs'))).to.throw().with.property('code', 'ENOENT')
    expect(() => fs.lstatSync(m('.paciofs/journal.db'))).to.throw().with.property('code', 'ENOENT')
    expect(() => fs.accessSync(m('meta/a'), fs.constants.R_OK)).not.to.throw()
    // an open file unlinked: its attributes come from the handle (fgetattr)
    const fd = fs.openSync(m('meta/gone'), 'w+')
    fs.writeSync(fd, Buffer.alloc(1000, 1))
    fs.unlinkSync(m('meta/gone'))
    const st = fs.fstatSync(fd)
    expect(st.size).to.equal(1000)
    expect(st.nlink).to.equal(0)
    fs.closeSync(fd)
    const code = await mount.stop()
    mount = undefined
    expect(code).to.equal(0)
    const served = JSON.parse(fs.readFileSync(stats, 'utf8')) as {fastMeta: number}
    // the kernel caches attributes for a second: each lstat, lookup and flush above asked about once
    expect(served.fastMeta, JSON.stringify(served)).to.be.at.least(15)

    // the records are exact: verify finds the volume as the mount left it
    const res = await paciofs(['verify', '--volume', area.volume, '--json'], {timeoutMs: 120_000})
    expect(JSON.parse(res.stdout).status, res.stdout).to.equal('clean')
  })

  it('files closed just before the mount is stopped have their digests recorded before the journal closes', async () => {
    mount = await mountPacio(area.volume, area.mnt)
    const m = (p: string) => join(area.mnt, 'stop', p)
    fs.mkdirSync(join(area.mnt, 'stop'))
    const body = (i: number) => Buffer.from(`closed just before the stop ${i} `.repeat(7 + i))
    const N = 20
    for (let i = 0; i < N; i++) fs.writeFileSync(m(`f${i}`), body(i))
    // no op and no wait after the last close (whose FUSE_RELEASE the kernel sends in the background): SIGTERM at once
    const code = await mount.stop()
    mount = undefined
    expect(code).to.equal(0)

    const log = await paciofs(['log', '--volume', area.volume, '--path', '/stop/*', '--json'])
    expect(log.code, log.stderr).to.equal(0)
    const recs = log.stdout.trim().split('\n').map(l => JSON.parse(l).record as {op: string; path: string; digest?: string})
    for (let i = 0; i < N; i++) {
      const digest = createHash('sha256').update(body(i)).digest('hex')
      expect(recs.some(r => r.op === 'write' && r.path === `/stop/f${i}` && r.digest === digest), `f${i}`).to.equal(true)
    }

    const res = await paciofs(['verify', '--volume', area.volume, '--json'], {timeoutMs: 120_000})
    expect(JSON.parse(res.stdout).status, res.stdout).to.equal('clean')
  })

  it('PACIOFS_PASSTHROUGH=io leaves metadata to JS', async () => {
    const stats = join(area.dir, 'io.json')
    mount = await mountPacio(area.volume, area.mnt, {env: {PACIOFS_PASSTHROUGH_STATS: stats, PACIOFS_PASSTHROUGH: 'io'}})
    for (let i = 0; i < 50; i++) fs.statSync(join(area.mnt, 'meta/a'))
    const code = await mount.stop()
    mount = undefined
    expect(code).to.equal(0)
    expect((JSON.parse(fs.readFileSync(stats, 'utf8')) as {fastMeta: number}).fastMeta).to.equal(0)
  })
})
