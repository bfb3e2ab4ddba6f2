// Replica servers (`paciofs join`) on loopback, every party in its own
// process: a primary (`paciofs serve`), replicas, and remote mounts writing
// to the primary. Each replica must end up with the primary's tree and
// verify clean against its own copy of the ledger.
import {expect} from 'chai'
import {randomBytes} from 'node:crypto'
import {appendFile, chmod, link, mkdir, readFile, rename, rm, symlink, truncate, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {run} from '../../helpers/exec.js'
import {paciofs, scratch, type PacioMount} from '../../helpers/paciofs.js'
import {memberKey, mountRemote, startServe, type Served} from '../../helpers/remote.js'
import {startJoin, status, treeOf, waitInSync, type Replica} from '../../helpers/replica.js'

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
})
