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

  it('release is answered by the binding; the volume still runs it before the ops that follow, and records stay in order', async () => {
    const stats = join(area.dir, 'release.json')
    mount = await mountPacio(area.volume, area.mnt, {env: {PACIOFS_PASSTHROUGH_STATS: stats}})
    const m = (p: string) => join(area.mnt, 'rel', p)
    fs.mkdirSync(join(area.mnt, 'rel'))
    const N = 40
    const body = (i: number, v = 0) => Buffer.from(`file ${i} version ${v} `.repeat(10 + i))
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
    // close, then at once: unlink / rename / truncate and rewrite
    for (let i = 0; i < N; i++) {
      fs.writeFileSync(m(`u${i}`), body(i))
      fs.unlinkSync(m(`u${i}`))
      fs.writeFileSync(m(`r${i}`), body(i))
      fs.renameSync(m(`r${i}`), m(`s${i}`))
      fs.writeFileSync(m(`t${i}`), body(i))
      fs.writeFileSync(m(`t${i}`), body(i, 1))
    }

    // a release with no op after it still reaches the volume: the file's digest is recorded
    fs.writeFileSync(m('last'), body(99))
    await new Promise(resolve => setTimeout(resolve, 300))
    const code = await mount.stop()
    mount = undefined
    expect(code).to.equal(0)
    const served = JSON.parse(fs.readFileSync(stats, 'utf8')) as {asyncReleases: number}
    expect(served.asyncReleases, JSON.stringify(served)).to.be.at.least(4 * N + 1)

    const log = await paciofs(['log', '--volume', area.volume, '--path', '/rel/*', '--json'])
    expect(log.code, log.stderr).to.equal(0)
    const recs = log.stdout.trim().split('\n').map(l => JSON.parse(l).record as {op: string; path: string; to?: string; digest?: string})
    const at = (op: string, path: string, digest?: string) => recs.findIndex(r => r.op === op && r.path === path && (digest === undefined || r.digest === digest))
    let ordered = 0
    for (let i = 0; i < N; i++) {
      // renamed and rewritten files: every version's digest, before the op that followed its close
      expect(at('write', `/rel/r${i}`, sha(body(i))), `r${i}`).to.be.within(0, at('rename', `/rel/r${i}`) - 1)
      const first = at('write', `/rel/t${i}`, sha(body(i)))
      expect(first, `t${i} v0`).to.be.at.least(0)
      expect(at('write', `/rel/t${i}`, sha(body(i, 1))), `t${i} v1`).to.be.above(first)
      // unlinked files: the kernel queues RELEASE before the UNLINK that follows close(2), but two
      // libfuse threads carry them and the second may reach the binding first (the volume then
      // records the unlink alone, as it always did); this almost never happens
      const w = at('write', `/rel/u${i}`, sha(body(i)))
      if (w >= 0 && w < at('unlink', `/rel/u${i}`)) ordered++
    }

    expect(ordered, 'write recorded before unlink').to.be.at.least(N - 2)
    expect(at('write', '/rel/last', sha(body(99)))).to.be.at.least(0)
    const res = await paciofs(['verify', '--volume', area.volume, '--json'], {timeoutMs: 120_000})
    expect(JSON.parse(res.stdout).status, res.stdout).to.equal('clean')
  })

  it('releases still queued in the binding when the mount is stopped are recorded before the journal closes', async () => {
    mount = await mountPacio(area.volume, area.mnt)
    const m = (p: string) => join(area.mnt, 'stop', p)
    fs.mkdirSync(join(area.mnt, 'stop'))
    const body = (i: number) => Buffer.from(`closed just before the stop ${i} `.repeat(7 + i))
    const N = 20
    for (let i = 0; i < N; i++) fs.writeFileSync(m(`f${i}`), body(i))
    // no op and no wait after the last close: SIGTERM at once
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

  it('PACIOFS_ASYNC_RELEASE=0 leaves release to JS', async () => {
    const stats = join(area.dir, 'sync-release.json')
    mount = await mountPacio(area.volume, area.mnt, {env: {PACIOFS_PASSTHROUGH_STATS: stats, PACIOFS_ASYNC_RELEASE: '0'}})
    for (let i = 0; i < 10; i++) fs.writeFileSync(join(area.mnt, `sync${i}`), 'x')
    const code = await mount.stop()
    mount = undefined
    expect(code).to.equal(0)
    expect((JSON.parse(fs.readFileSync(stats, 'utf8')) as {asyncReleases: number}).asyncReleases).to.equal(0)
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
