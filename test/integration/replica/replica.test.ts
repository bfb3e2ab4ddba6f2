// Replica servers (`paciofs join`) on loopback, every party in its own
// process: a primary (`paciofs serve`), replicas, and remote mounts writing
// to the primary. Each replica must end up with the primary's tree and
// verify clean against its own copy of the ledger.
import {expect} from 'chai'
import {createHash, randomBytes} from 'node:crypto'
import {appendFile, chmod, link, mkdir, open, readdir, readFile, rename, rm, symlink, truncate, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {run} from '../../helpers/exec.js'
import {paciofs, scratch, type PacioMount} from '../../helpers/paciofs.js'
import {memberKey, mountRemote, startServe, type Served} from '../../helpers/remote.js'
import {startJoin, status, treeOf, waitInSync, type Replica} from '../../helpers/replica.js'
import {startProxy} from '../../helpers/tcp-proxy.js'
import {marksFor, startEvilPeer} from '../../fakes/evil-peer.js'
import {pipeVersion} from '../../../src/history/reader.js'
import {HistoryStore} from '../../../src/history/store.js'
import {loadOrCreateServerTls} from '../../../src/server/tls.js'

/** A mixed workload: every kind of record a replica must apply. */
export async function workload(mnt: string, tag: string, files = 6): Promise<void> {
  await mkdir(join(mnt, tag, 'sub'), {recursive: true})
  for (let i = 0; i < files; i++) await writeFile(join(mnt, tag, `f${i}`), randomBytes(1000 + i * 40_000))
  await writeFile(join(mnt, tag, 'text'), 'first\n')
  await appendFile(join(mnt, tag, 'text'), 'second\n')
  await chmod(join(mnt, tag, 'text'), 0o640)
  await symlink('text', join(mnt, tag, 'link'))
  await link(join(mnt, tag, 'f0'), join(mnt, tag, 'sub', 'hard'))
  await rename(join(mnt, tag, 'f1'), join(mnt, tag, 'sub', 'moved'))
  await rm(join(mnt, tag, 'f2'))
  await truncate(join(mnt, tag, 'f3'), 500)
  await run('setfattr', ['-n', 'user.tag', '-v', tag, join(mnt, tag, 'text')])
  await writeFile(join(mnt, tag, 'f4'), randomBytes(2000)) // overwritten: a second version
}

async function verifyClean(dir: string, configDir: string): Promise<void> {
  const r = await paciofs(['verify', '--volume', dir, '--json'], {configDir, cacheDir: join(configDir, 'cache')})
  expect(r.code, `${r.stdout}\n${r.stderr}`).to.equal(0)
}

async function sameTree(a: string, b: string): Promise<void> {
  const [ta, tb] = [await treeOf(a), await treeOf(b)]
  expect([...tb.entries()]).to.deep.equal([...ta.entries()])
}

describe('paciofs join: replica servers', function () {
  this.timeout(300_000)
  let s: Awaited<ReturnType<typeof scratch>>
  let primary: Served | undefined
  const replicas: Replica[] = []
  const mounts: PacioMount[] = []
  const owner = () => join(s.dir, 'owner')

  beforeEach(async () => {
    s = await scratch('replica')
  })

  afterEach(async () => {
    for (const m of mounts.splice(0)) await m.stop().catch(() => m.kill())
    for (const r of replicas.splice(0)) await r.stop().catch(() => r.kill())
    if (primary) await primary.stop().catch(() => primary!.kill())
    primary = undefined
    await s.dispose()
  })

  it('join with --accept any: the replica converges, serves read-only mounts, and verifies clean', async () => {
    const vol = join(s.dir, 'archive')
    primary = await startServe([vol], {configDir: owner(), extraArgs: ['--accept', 'any']})
    const m = await mountRemote(primary, 'archive', join(s.dir, 'mnt'), {configDir: owner()})
    mounts.push(m)
    await workload(m.mountpoint, 'before')

    const rep = await startJoin(primary.address, 'archive', join(s.dir, 'rep1'), {configDir: join(s.dir, 'server1')})
    replicas.push(rep)
    await workload(m.mountpoint, 'during')
    await run('sync', [])
    const st = await waitInSync(primary.address, 'archive', owner(), {settleMs: 1500})
    const me = await memberKey(join(s.dir, 'server1'))
    expect(st.servers.find(x => x.key === me)).to.include({state: 'accepted', lag: 0})
    await sameTree(vol, rep.dir)

    // the replica serves members read-only: reads work, writes are refused naming the primary
    const rm1 = await mountRemote(rep.address, 'archive', join(s.dir, 'mnt-rep'), {configDir: owner()})
    mounts.push(rm1)
    expect(await readFile(join(rm1.mountpoint, 'before', 'text'), 'utf8')).to.equal('first\nsecond\n')
    const refused = await writeFile(join(rm1.mountpoint, 'nope'), 'x').then(() => 'written', (e: NodeJS.ErrnoException) => e.code)
    expect(refused).to.equal('EROFS')
    const repStatus = await status(rep.address, 'archive', owner())
    expect(repStatus.role).to.equal('replica')
    expect(repStatus.head).to.equal(st.head)

    await rm1.stop()
    mounts.splice(mounts.indexOf(rm1), 1)
    expect(await rep.stop()).to.equal(0)
    await verifyClean(rep.dir, owner())
  })

  it('join with --accept manual waits for `paciofs member accept`, then converges', async () => {
    const vol = join(s.dir, 'archive')
    primary = await startServe([vol], {configDir: owner()})
    const m = await mountRemote(primary, 'archive', join(s.dir, 'mnt'), {configDir: owner()})
    mounts.push(m)
    await workload(m.mountpoint, 'a')

    const rep = await startJoin(primary.address, 'archive', join(s.dir, 'rep'), {configDir: join(s.dir, 'server1'), waitAccepted: false})
    replicas.push(rep)
    const key = await memberKey(join(s.dir, 'server1'))
    let st = await status(primary.address, 'archive', owner())
    for (let i = 0; i < 50 && !st.servers.some(x => x.key === key); i++) {
      await new Promise(r => setTimeout(r, 200))
      st = await status(primary.address, 'archive', owner())
    }

    expect(st.servers.find(x => x.key === key)?.state).to.equal('pending')
    await new Promise(r => setTimeout(r, 1000))
    expect(rep.output()).to.not.match(/replica of archive/) // still waiting

    // a stranger's vote does not count
    const stranger = await paciofs(['member', 'accept', key, '--server', primary.address, '--volume', 'archive'], {configDir: join(s.dir, 'stranger')})
    expect(stranger.code).to.not.equal(0)
    expect(stranger.stderr).to.match(/neither a server nor a member/)

    const r = await paciofs(['member', 'accept', key, '--server', primary.address, '--volume', 'archive'], {configDir: owner()})
    expect(r.code, r.stderr).to.equal(0)
    expect(r.stdout).to.match(/accepted/)
    await waitInSync(primary.address, 'archive', owner(), {key, settleMs: 1000})
    await sameTree(vol, rep.dir)
    const log = await paciofs(['log', '--volume', rep.dir, '--json'], {configDir: owner()})
    const ops = log.stdout.trim().split('\n').map(l => (JSON.parse(l) as {record?: {op: string; who: {member: string}}}).record)
    expect(ops.find(o => o?.op === 'server-join')?.who.member).to.equal(key)
    expect(ops.find(o => o?.op === 'server-accept')?.who.member).to.equal(await memberKey(owner()))
    expect(await rep.stop()).to.equal(0)
    await verifyClean(rep.dir, owner())
  })

  it('`paciofs leave`: the server leaves, its join stops, status and log show it; bad input is refused', async () => {
    const vol = join(s.dir, 'archive')
    primary = await startServe([vol], {configDir: owner(), extraArgs: ['--accept', 'any']})
    const m = await mountRemote(primary, 'archive', join(s.dir, 'mnt'), {configDir: owner()})
    mounts.push(m)
    await workload(m.mountpoint, 'a')
    const cfg = join(s.dir, 'server1')
    const rep = await startJoin(primary.address, 'archive', join(s.dir, 'rep'), {configDir: cfg})
    replicas.push(rep)
    const key = await memberKey(cfg)
    await waitInSync(primary.address, 'archive', owner(), {key, settleMs: 500})

    const unreachable = await paciofs(['leave', '127.0.0.1:1', '--volume', 'archive'], {configDir: cfg})
    expect(unreachable.code).to.not.equal(0)
    expect(unreachable.stderr).to.match(/cannot reach a PacioFS server at 127\.0\.0\.1:1/)
    const noVolume = await paciofs(['leave', primary.address, '--volume', 'nosuch'], {configDir: cfg})
    expect(noVolume.code).to.not.equal(0)
    expect(noVolume.stderr).to.match(/no volume named "nosuch"/)
    const stranger = await paciofs(['leave', primary.address, '--volume', 'archive'], {configDir: join(s.dir, 'stranger')})
    expect(stranger.code).to.not.equal(0)
    expect(stranger.stderr).to.match(/neither a server nor a member/)
    expect((await status(primary.address, 'archive', owner())).servers.find(x => x.key === key)?.state).to.equal('accepted')

    const left = await paciofs(['leave', primary.address, '--volume', 'archive', '--json'], {configDir: cfg})
    expect(left.code, left.stderr).to.equal(0)
    expect(JSON.parse(left.stdout)).to.deep.equal({server: key, state: 'left'})
    // its join stops by itself (it serves the volume no more), and the primary lists it as left
    const deadline = Date.now() + 30_000
    while (rep.child.exitCode === null && Date.now() < deadline) await new Promise(r => setTimeout(r, 100))
    expect(rep.child.exitCode, rep.output()).to.equal(0)
    expect(rep.output()).to.match(/no longer in the group of archive|left the group of archive/)
    const st = await status(primary.address, 'archive', owner())
    expect(st.servers.find(x => x.key === key)).to.include({state: 'left', applied: null})
    await workload(m.mountpoint, 'b')
    expect(await readFile(join(rep.dir, 'b', 'text')).then(() => 'there', () => 'absent')).to.equal('absent')

    // leaving twice is refused with the reason; the ledger names the server that left
    const again = await paciofs(['leave', primary.address, '--volume', 'archive'], {configDir: cfg})
    expect(again.code).to.not.equal(0)
    expect(again.stderr).to.match(/is left, not accepted/)
    await m.stop()
    mounts.splice(mounts.indexOf(m), 1)
    await primary.stop()
    primary = undefined
    const log = await paciofs(['log', '--volume', vol, '--json'], {configDir: owner()})
    const ops = log.stdout.trim().split('\n').map(l => (JSON.parse(l) as {record?: {op: string; member?: string; who: {member: string}}}).record)
    expect(ops.find(o => o?.op === 'server-leave')).to.deep.include({member: key}).and.to.have.nested.property('who.member', key)
    await verifyClean(rep.dir, owner())
  })
})

describe('paciofs join: faults', function () {
  this.timeout(300_000)
  let s: Awaited<ReturnType<typeof scratch>>
  let primary: Served | undefined
  const replicas: Replica[] = []
  const mounts: PacioMount[] = []
  const cleanups: Array<() => Promise<unknown>> = []
  const owner = () => join(s.dir, 'owner')

  beforeEach(async () => {
    s = await scratch('replica-faults')
  })

  afterEach(async () => {
    for (const m of mounts.splice(0)) await m.stop().catch(() => m.kill())
    for (const r of replicas.splice(0)) await r.stop().catch(() => r.kill())
    for (const c of cleanups.splice(0)) await c().catch(() => {})
    if (primary) await primary.stop().catch(() => primary!.kill())
    primary = undefined
    await s.dispose()
  })

  /** Writes `n` files one after the other (with fsync), until done or stopped. */
  function writer(mnt: string, dirName: string, n: number, gapMs = 20) {
    let stop = false
    const written: string[] = []
    const done = (async () => {
      await mkdir(join(mnt, dirName), {recursive: true})
      for (let i = 0; i < n && !stop; i++) {
        const fh = await open(join(mnt, dirName, `w${i}`), 'w')
        await fh.write(randomBytes(20_000 + (i % 7) * 30_000))
        await fh.sync()
        await fh.close()
        written.push(`w${i}`)
        await new Promise(r => setTimeout(r, gapMs))
      }
    })()
    return {written, done, stop: () => (stop = true)}
  }

  it('a replica killed with SIGKILL during writes catches up after a restart and verifies clean', async () => {
    const vol = join(s.dir, 'archive')
    primary = await startServe([vol], {configDir: owner(), extraArgs: ['--accept', 'any']})
    const m = await mountRemote(primary, 'archive', join(s.dir, 'mnt'), {configDir: owner()})
    mounts.push(m)
    await workload(m.mountpoint, 'base')
    const cfg = join(s.dir, 'server1')
    const rep = await startJoin(primary.address, 'archive', join(s.dir, 'rep'), {configDir: cfg})
    const w = writer(m.mountpoint, 'load', 80)
    while (w.written.length < 15) await new Promise(r => setTimeout(r, 50))
    await rep.kill()
    const killedAt = w.written.length
    while (w.written.length < killedAt + 15) await new Promise(r => setTimeout(r, 50))
    const again = await startJoin(primary.address, 'archive', join(s.dir, 'rep'), {configDir: cfg})
    replicas.push(again)
    await w.done
    await workload(m.mountpoint, 'after')
    await waitInSync(primary.address, 'archive', owner(), {settleMs: 1500})
    await sameTree(vol, again.dir)
    expect(await again.stop()).to.equal(0)
    await verifyClean(again.dir, owner())
  })

  it('the primary dies: a client given several servers reads on from the replica, writes get EROFS, nothing acknowledged is lost', async () => {
    const vol = join(s.dir, 'archive')
    primary = await startServe([vol], {configDir: owner(), extraArgs: ['--accept', 'any', '--sync-replicas', '1']})
    const rep = await startJoin(primary.address, 'archive', join(s.dir, 'rep'), {configDir: join(s.dir, 'server1')})
    replicas.push(rep)
    await waitInSync(primary.address, 'archive', owner())
    const m = await mountRemote(`${primary.address},${rep.address}`, 'archive', join(s.dir, 'mnt'), {configDir: owner()})
    mounts.push(m)
    const w = writer(m.mountpoint, 'acked', 25, 0)
    await w.done
    const acked = new Map<string, Buffer>()
    for (const f of w.written) acked.set(f, await readFile(join(m.mountpoint, 'acked', f)))

    await primary.kill() // SIGKILL: no goodbye to anyone
    primary = undefined
    // every acknowledged file reads back, now from the replica
    const names = await run('ls', [join(m.mountpoint, 'acked')])
    expect(names.stdout.trim().split('\n').sort()).to.deep.equal([...acked.keys()].sort())
    for (const [f, data] of acked) expect((await readFile(join(m.mountpoint, 'acked', f))).equals(data), f).to.equal(true)
    const refused = await writeFile(join(m.mountpoint, 'acked', 'new'), 'x').then(() => 'written', (e: NodeJS.ErrnoException) => e.code)
    expect(refused).to.equal('EROFS')
    expect(m.output()).to.match(/now using 127\.0\.0\.1/)
  })

  it('a peer serving wrong preimages and content is detected, voted out, and the replica still converges', async () => {
    const vol = join(s.dir, 'archive')
    primary = await startServe([vol], {configDir: owner(), extraArgs: ['--accept', 'any']})
    const m = await mountRemote(primary, 'archive', join(s.dir, 'mnt'), {configDir: owner()})
    mounts.push(m)
    await workload(m.mountpoint, 'x')
    const tls = await loadOrCreateServerTls(join(owner(), 'server'))
    const evil = await startEvilPeer(s.dir, {address: primary.address, fingerprint: tls.fingerprint.toString('hex'), cert: tls.cert.toString()}, 'archive')
    cleanups.push(() => evil.close())
    expect((await status(primary.address, 'archive', owner())).servers.find(x => x.key === evil.key)?.state).to.equal('accepted')

    const rep = await startJoin(primary.address, 'archive', join(s.dir, 'rep'), {configDir: join(s.dir, 'server1')})
    replicas.push(rep)
    const me = await memberKey(join(s.dir, 'server1'))
    await waitInSync(primary.address, 'archive', owner(), {key: me, settleMs: 1000})
    // blocks prepared before the replica applied the evil peer's acceptance were fetched from the primary;
    // what is written now is asked of the other replicas first
    await workload(m.mountpoint, 'y')
    await run('sync', [])
    await waitInSync(primary.address, 'archive', owner(), {key: me, settleMs: 1000})
    expect(evil.asked.preimages).to.be.greaterThan(0) // it was asked (other replicas first), and lied
    expect(rep.output()).to.match(/does not match the ledger.*voting it out/)
    const st = await status(primary.address, 'archive', owner())
    expect(st.servers.find(x => x.key === evil.key)?.state).to.equal('kicked')
    await sameTree(vol, rep.dir)
    expect(await rep.stop()).to.equal(0)
    const log = await paciofs(['log', '--volume', rep.dir, '--json'], {configDir: owner()})
    const kick = log.stdout.trim().split('\n').map(l => (JSON.parse(l) as {record?: {op: string; member?: string; reason?: string; who: {member: string}}}).record).find(r => r?.op === 'server-kick')
    expect(kick?.member).to.equal(evil.key)
    expect(kick?.who.member).to.equal(me)
    expect(kick?.reason).to.match(/preimage|content/)
    await verifyClean(rep.dir, owner())
  })

  /** Files of several 256 KiB chunks (versions with marks), written and synced through the mount. */
  async function bigFiles(mnt: string, tag: string): Promise<void> {
    await mkdir(join(mnt, tag), {recursive: true})
    for (let i = 0; i < 3; i++) await writeFile(join(mnt, tag, `big${i}`), randomBytes(700_000 + i * 300_000))
    await run('sync', [])
  }

  /** The marks files of a volume's history store. */
  async function marksFiles(vol: string): Promise<string[]> {
    const dir = join(vol, '.paciofs', 'history', 'marks')
    const out: string[] = []
    for (const sub of await readdir(dir).catch(() => [] as string[])) {
      for (const name of await readdir(join(dir, sub))) if (!name.endsWith('.tmp')) out.push(join(dir, sub, name))
    }

    return out
  }

  it('the primary\'s marks are wrong: the replica checks each version in one pass instead, keeps its own marks, and converges', async () => {
    const vol = join(s.dir, 'archive')
    primary = await startServe([vol], {configDir: owner(), extraArgs: ['--accept', 'any']})
    const m = await mountRemote(primary, 'archive', join(s.dir, 'mnt'), {configDir: owner()})
    mounts.push(m)
    await bigFiles(m.mountpoint, 'big')
    const end = Date.now() + 30_000
    while ((await marksFiles(vol)).length < 3) {
      if (Date.now() > end) throw new Error('the primary kept no marks')
      await new Promise(r => setTimeout(r, 100))
    }

    for (const f of await marksFiles(vol)) {
      const b = await readFile(f)
      b[b.length - 7] ^= 0x11 // the state after the chunk before the last: its step and the last one miss
      await writeFile(f, b)
    }

    process.env.PACIOFS_REPLICA_TIMING = '1'
    const rep = await startJoin(primary.address, 'archive', join(s.dir, 'rep'), {configDir: join(s.dir, 'server1')}).finally(() => delete process.env.PACIOFS_REPLICA_TIMING)
    replicas.push(rep)
    await waitInSync(primary.address, 'archive', owner(), {settleMs: 1000})
    await sameTree(vol, rep.dir)
    expect(await rep.stop()).to.equal(0)
    const versions = /versions \{"withMarks":(\d+),"onePass":(\d+)\}/.exec(rep.output())
    expect(versions, rep.output()).to.not.equal(null)
    expect(Number(versions![1])).to.equal(0) // none passed with the wrong marks
    expect(Number(versions![2])).to.be.at.least(3)
    expect(rep.output()).to.not.match(/voting it out/) // wrong marks are no lie about the version
    for (let i = 0; i < 3; i++) {
      const data = await readFile(join(rep.dir, 'big', `big${i}`))
      const digest = createHash('sha256').update(data).digest('hex')
      const kept = await readFile(join(rep.dir, '.paciofs', 'history', 'marks', digest.slice(0, 2), digest))
      expect(kept.equals(marksFor(data)), `marks of big${i}`).to.equal(true)
    }

    await verifyClean(rep.dir, owner())
  })

  it('a peer serving an altered chunk with marks that fit it is voted out, and the replica still converges', async () => {
    const vol = join(s.dir, 'archive')
    primary = await startServe([vol], {configDir: owner(), extraArgs: ['--accept', 'any']})
    const m = await mountRemote(primary, 'archive', join(s.dir, 'mnt'), {configDir: owner()})
    mounts.push(m)
    await bigFiles(m.mountpoint, 'x')
    const store = new HistoryStore(join(vol, '.paciofs', 'history'))
    const content = async (digest: string) => {
      if (!store.has(digest)) return undefined
      const parts: Buffer[] = []
      await pipeVersion(store, store.manifest(digest), {whole: true, chunks: false, sink: async data => {
        parts.push(Buffer.from(data))
      }})
      return Buffer.concat(parts)
    }

    const tls = await loadOrCreateServerTls(join(owner(), 'server'))
    const evil = await startEvilPeer(s.dir, {address: primary.address, fingerprint: tls.fingerprint.toString('hex'), cert: tls.cert.toString()}, 'archive', {content})
    cleanups.push(() => evil.close())
    const rep = await startJoin(primary.address, 'archive', join(s.dir, 'rep'), {configDir: join(s.dir, 'server1')})
    replicas.push(rep)
    const me = await memberKey(join(s.dir, 'server1'))
    await waitInSync(primary.address, 'archive', owner(), {key: me, settleMs: 1000})
    await bigFiles(m.mountpoint, 'y') // asked of the other replicas first: the evil one
    await waitInSync(primary.address, 'archive', owner(), {key: me, settleMs: 1000})
    expect(evil.asked.forged).to.be.greaterThan(0)
    expect(rep.output()).to.match(/content it gave for version .* hashes to .*voting it out/s)
    expect((await status(primary.address, 'archive', owner())).servers.find(x => x.key === evil.key)?.state).to.equal('kicked')
    await sameTree(vol, rep.dir)
    expect(await rep.stop()).to.equal(0)
    await verifyClean(rep.dir, owner())
  })

  it('a partition between replica and primary: the replica keeps its copy, and after the heal they agree', async () => {
    const vol = join(s.dir, 'archive')
    primary = await startServe([vol], {configDir: owner(), extraArgs: ['--accept', 'any']})
    const proxy = await startProxy({host: '127.0.0.1', port: primary.port})
    cleanups.push(() => proxy.close())
    const m = await mountRemote(primary, 'archive', join(s.dir, 'mnt'), {configDir: owner()})
    mounts.push(m)
    await workload(m.mountpoint, 'one')
    const rep = await startJoin(proxy.address, 'archive', join(s.dir, 'rep'), {configDir: join(s.dir, 'server1')})
    replicas.push(rep)
    await waitInSync(primary.address, 'archive', owner(), {settleMs: 1000})
    const before = (await status(rep.address, 'archive', owner())).head

    await proxy.cut()
    await workload(m.mountpoint, 'two')
    await run('sync', [])
    await new Promise(r => setTimeout(r, 1500))
    const cut = await status(rep.address, 'archive', owner())
    const head = (await status(primary.address, 'archive', owner())).head
    expect(cut.head).to.equal(before) // kept what it had, got nothing new
    expect(head).to.be.greaterThan(before)

    await proxy.heal()
    const end = Date.now() + 60_000
    while ((await status(rep.address, 'archive', owner())).head < head) {
      if (Date.now() > end) throw new Error(`no catch-up after the heal:\n${rep.output()}`)
      await new Promise(r => setTimeout(r, 200))
    }

    await waitInSync(primary.address, 'archive', owner(), {settleMs: 1000})
    await sameTree(vol, rep.dir)
    expect(await rep.stop()).to.equal(0)
    await verifyClean(rep.dir, owner())
  })
})
