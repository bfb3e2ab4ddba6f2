// Remote mounts against a real `paciofs serve` on loopback, every party in
// its own process: two users in one volume, two volumes at once, the server
// restarting under a running client.
import {expect} from 'chai'
import {createHash, randomBytes} from 'node:crypto'
import {chmod, mkdir, open, readFile, readdir, stat, unlink, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {paciofs, scratch, type PacioMount} from '../../helpers/paciofs.js'
import {SERVER_SEMI_SPACE_MB} from '../../../src/app/relaunch.js'
import {member, memberKey, mountRemote, startServe, type Served} from '../../helpers/remote.js'

interface LogLine {
  record?: {op: string; path: string; member?: string; who: {member: string; uid: number}}
}

async function logOf(volume: string, configDir: string): Promise<LogLine[]> {
  const r = await paciofs(['log', '--volume', volume, '--json'], {configDir})
  expect(r.code, r.stderr).to.equal(0)
  return r.stdout.trim().split('\n').filter(Boolean).map(l => JSON.parse(l) as LogLine)
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

const waitFor = async (what: string, test: () => Promise<boolean>, ms = 15_000) => {
  const end = Date.now() + ms
  while (!(await test())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(r => setTimeout(r, 100))
  }
}

describe('paciofs serve: remote mounts', function () {
  this.timeout(180_000)
  let s: Awaited<ReturnType<typeof scratch>>
  let server: Served | undefined
  const mounts: PacioMount[] = []
  const alice = () => join(s.dir, 'alice')
  const bob = () => join(s.dir, 'bob')

  beforeEach(async () => {
    s = await scratch('remote')
  })

  afterEach(async () => {
    for (const m of mounts.splice(0)) await m.stop().catch(() => m.kill())
    if (server) await server.stop()
    server = undefined
    await s.dispose()
  })

  it('two users write different files in one volume; log names both authors', async () => {
    const vol = join(s.dir, 'shared')
    server = await startServe([vol], {configDir: alice()})
    const aliceKey = await memberKey(alice())
    const bobKey = await memberKey(bob())
    expect(aliceKey).to.not.equal(bobKey)

    // bob is not a member yet: his mount is refused with a clear reason
    const refused = await mountRemote(server, 'shared', join(s.dir, 'mnt-bob0'), {configDir: bob()}).then(() => "mounted", (e: Error) => e.message.replace(/\s*›\s*/g, ' '))
    expect(refused).to.match(/not a member of volume shared/, refused)

    const added = await member('add', [bobKey, '--server', server.address, '--volume', 'shared'], alice())
    expect(added.code, added.stderr).to.equal(0)
    const listed = await member('list', ['--server', server.address, '--volume', 'shared', '--json'], bob())
    expect(listed.code, listed.stderr).to.equal(0)
    expect(JSON.parse(listed.stdout).members).to.have.members([aliceKey, bobKey])

    const ma = await mountRemote(server, 'shared', join(s.dir, 'mnt-a'), {configDir: alice()})
    mounts.push(ma)
    const mb = await mountRemote(server, 'shared', join(s.dir, 'mnt-b'), {configDir: bob()})
    mounts.push(mb)
    await writeFile(join(ma.mountpoint, 'from-alice.txt'), 'written by alice\n')
    await mkdir(join(mb.mountpoint, 'bobs'))
    await writeFile(join(mb.mountpoint, 'bobs', 'from-bob.txt'), 'written by bob\n')
    // each sees the other's file (entry and attribute caches time out within a second or so)
    await waitFor('alice to see bob\'s file', async () => (await readFile(join(ma.mountpoint, 'bobs', 'from-bob.txt'), 'utf8').catch(() => '')) === 'written by bob\n')
    expect(await readFile(join(mb.mountpoint, 'from-alice.txt'), 'utf8')).to.equal('written by alice\n')
    expect((await readdir(mb.mountpoint)).sort()).to.deep.equal(['bobs', 'from-alice.txt'])

    for (const m of mounts.splice(0)) expect(await m.stop(), m.output()).to.equal(0)
    expect(await server.stop(), server.output()).to.equal(0)
    server = undefined

    const log = await logOf(vol, alice())
    const by = (path: string, op: string) => log.filter(l => l.record?.path === path && l.record.op === op).map(l => l.record!.who.member)
    expect(by('/from-alice.txt', 'create')).to.deep.equal([aliceKey])
    expect(by('/from-alice.txt', 'write')).to.deep.equal([aliceKey])
    expect(by('/bobs', 'mkdir')).to.deep.equal([bobKey])
    expect(by('/bobs/from-bob.txt', 'create')).to.deep.equal([bobKey])
    expect(by('/bobs/from-bob.txt', 'write')).to.deep.equal([bobKey])
    const adds = log.filter(l => l.record?.op === 'member-add').map(l => [l.record!.member, l.record!.who.member])
    expect(adds).to.deep.equal([[aliceKey, aliceKey], [bobKey, aliceKey]])

    const verified = await paciofs(['verify', '--volume', vol], {configDir: alice(), cacheDir: join(s.dir, 'vcache')})
    expect(verified.code, verified.stdout + verified.stderr).to.equal(0)
  })

  it('a mount answering lookups of new names itself still sees another mount\'s new name within about a second', async () => {
    server = await startServe([join(s.dir, 'names')], {configDir: alice()})
    const ma = await mountRemote(server, 'names', join(s.dir, 'mnt-a'), {configDir: alice()})
    mounts.push(ma)
    const mb = await mountRemote(server, 'names', join(s.dir, 'mnt-b'), {configDir: alice()})
    mounts.push(mb)
    const exists = (p: string) => stat(p).then(() => true, (e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e
      return false
    })
    const d = join(ma.mountpoint, 'd')
    await mkdir(d) // a knows d's names from here on (it made it)
    for (let i = 0; i < 20; i++) await writeFile(join(d, `a${i}`), 'a')
    expect(await exists(join(d, 'nothing'))).to.equal(false)
    expect(await exists(join(d, 'a7'))).to.equal(true)

    // b makes a name in d while a goes on creating: a sees it within about a second
    await writeFile(join(mb.mountpoint, 'd', 'from-b'), 'b')
    const t0 = Date.now()
    let i = 20
    while (!(await exists(join(d, 'from-b')))) {
      expect(Date.now() - t0, 'a mount did not see another mount\'s new name in time').to.be.below(1500)
      await writeFile(join(d, `a${i++}`), 'a')
    }

    // and once more without a's own changes in between (its knowledge ages out)
    await writeFile(join(d, 'a-last'), 'a')
    await writeFile(join(mb.mountpoint, 'd', 'from-b2'), 'b')
    await waitFor('a to see from-b2', () => exists(join(d, 'from-b2')), 1500)
    expect((await readdir(d)).length).to.equal(i + 3)
    // b's unlink is seen too, and a's create of the same name afterwards works
    await unlink(join(mb.mountpoint, 'd', 'from-b'))
    await waitFor('a to see from-b gone', async () => !(await exists(join(d, 'from-b'))), 1500)
    await writeFile(join(d, 'from-b'), 'a again')
    expect(await readFile(join(mb.mountpoint, 'd', 'from-b'), 'utf8')).to.equal('a again')
  })

  it('a mount answering lookups of entries it made itself still sees another mount\'s write, chmod and unlink of them within about a second', async () => {
    server = await startServe([join(s.dir, 'made')], {configDir: alice()})
    const ma = await mountRemote(server, 'made', join(s.dir, 'mnt-a'), {configDir: alice()})
    mounts.push(ma)
    const mb = await mountRemote(server, 'made', join(s.dir, 'mnt-b'), {configDir: alice()})
    mounts.push(mb)
    const d = join(ma.mountpoint, 'e')
    await mkdir(d)
    let i = 0
    const touch = async () => (await open(join(d, `f${i++}`), 'w')).close() // made by a, never written: a knows its attributes
    while (i < 10) await touch()

    // b changes two of them (no name changes: the namespace version does not move) while a goes on making
    // names, so that what a knows stays fresh: a sees both changes, then b's unlink of a third
    await writeFile(join(mb.mountpoint, 'e', 'f3'), 'from b')
    await chmod(join(mb.mountpoint, 'e', 'f4'), 0o600)
    const seen = async () => (await stat(join(d, 'f3'))).size === 6 && ((await stat(join(d, 'f4'))).mode & 0o777) === 0o600
    const gone = () => stat(join(d, 'f5')).then(() => false, (e: NodeJS.ErrnoException) => e.code === 'ENOENT')
    for (const [what, test] of [['write and chmod', seen], ['unlink', gone]] as const) {
      if (what === 'unlink') await unlink(join(mb.mountpoint, 'e', 'f5'))
      const t0 = Date.now()
      while (!(await test())) {
        expect(Date.now() - t0, `a mount did not see another mount's ${what} of files it made in time`).to.be.below(2500)
        await touch()
      }
    }

    // a's own unlinks of files it made (their lookups answered by a itself) remove them on the server
    for (const n of ['f0', 'f1', 'f6']) await unlink(join(d, n))
    await waitFor('b to see a\'s unlinks', async () => !(await readdir(join(mb.mountpoint, 'e'))).some(n => ['f0', 'f1', 'f6'].includes(n)), 2500)
  })

  it('serves two volumes at once, each with its own members and ledger', async () => {
    const v1 = join(s.dir, 'one')
    const v2 = join(s.dir, 'two')
    server = await startServe([v1, v2], {configDir: alice()})
    const m1 = await mountRemote(server, 'one', join(s.dir, 'mnt1'), {configDir: alice()})
    mounts.push(m1)
    const m2 = await mountRemote(server, 'two', join(s.dir, 'mnt2'), {configDir: alice()})
    mounts.push(m2)
    await writeFile(join(m1.mountpoint, 'a'), 'one')
    await writeFile(join(m2.mountpoint, 'b'), 'two')
    // serve replaced itself (same pid) by node with a larger young generation; a mount keeps bin/run.js's cap
    const cmdline = async (pid?: number) => (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0')
    expect(await cmdline(server.child.pid)).to.include(`--max-semi-space-size=${SERVER_SEMI_SPACE_MB}`)
    expect(await cmdline(m1.child.pid)).to.include('--max-semi-space-size=2').and.not.include(`--max-semi-space-size=${SERVER_SEMI_SPACE_MB}`)
    expect(await readdir(m1.mountpoint)).to.deep.equal(['a'])
    expect(await readdir(m2.mountpoint)).to.deep.equal(['b'])
    // bob, a member of "two" only, is refused on "one"
    const bobKey = await memberKey(bob())
    expect((await member('add', [bobKey, '--server', server.address, '--volume', 'two'], alice())).code).to.equal(0)
    const onTwo = await mountRemote(server, 'two', join(s.dir, 'mnt-b2'), {configDir: bob()})
    mounts.push(onTwo)
    expect(await readFile(join(onTwo.mountpoint, 'b'), 'utf8')).to.equal('two')
    const onOne = await mountRemote(server, 'one', join(s.dir, 'mnt-b1'), {configDir: bob()}).then(() => "mounted", (e: Error) => e.message.replace(/\s*›\s*/g, ' '))
    expect(onOne).to.match(/not a member of volume one/, onOne)

    for (const m of mounts.splice(0)) expect(await m.stop()).to.equal(0)
    expect(await server.stop()).to.equal(0)
    server = undefined
    const l1 = await logOf(v1, alice())
    const l2 = await logOf(v2, alice())
    expect(l1.some(l => l.record?.path === '/a')).to.equal(true)
    expect(l1.some(l => l.record?.path === '/b')).to.equal(false)
    expect(l2.some(l => l.record?.path === '/b')).to.equal(true)
    expect(l2.some(l => l.record?.op === 'member-add' && l.record.member === bobKey)).to.equal(true)
    expect(l1.some(l => l.record?.op === 'member-add' && l.record.member === bobKey)).to.equal(false)
  })

  it('moves large files intact through write-behind and read-ahead, and another mount sees them', async () => {
    const vol = join(s.dir, 'vol')
    server = await startServe([vol], {configDir: alice()})
    const m = await mountRemote(server, 'vol', join(s.dir, 'mnt'), {configDir: alice()})
    mounts.push(m)
    const data = randomBytes(12 * 1024 * 1024 + 12345)
    await writeFile(join(m.mountpoint, 'big'), data)
    expect(sha(await readFile(join(m.mountpoint, 'big')))).to.equal(sha(data))
    // overwrite a range in place, then read it back at odd offsets
    const fh = await open(join(m.mountpoint, 'big'), 'r+')
    const patch = randomBytes(3 * 1024 * 1024)
    await fh.write(patch, 0, patch.length, 5_000_000)
    patch.copy(data, 5_000_000)
    await fh.close()
    const rd = await open(join(m.mountpoint, 'big'), 'r')
    for (const [off, len] of [[0, 4096], [5_000_000 - 7, 70_000], [12 * 1024 * 1024, 20_000], [1_048_575, 2]]) {
      const b = Buffer.alloc(len)
      const {bytesRead} = await rd.read(b, 0, len, off)
      expect(b.subarray(0, bytesRead).equals(data.subarray(off, off + len)), `at ${off}`).to.equal(true)
    }

    await rd.close()
    const other = await mountRemote(server, 'vol', join(s.dir, 'mnt2'), {configDir: alice()})
    mounts.push(other)
    expect(sha(await readFile(join(other.mountpoint, 'big')))).to.equal(sha(data))
    expect(sha(await readFile(join(vol, 'big')))).to.equal(sha(data))
  })

  it('several clients write large files at once, each fsynced halfway: all complete, their bytes and their halfway versions verify', async () => {
    // the version fsynced halfway is stored in the background while its writer goes on: the
    // capture must take exactly the bytes fsynced, and the writer must not wait for it
    const vol = join(s.dir, 'vol')
    server = await startServe([vol], {configDir: alice()})
    const K = 3
    const MiB = 1024 * 1024
    const size = 16 * MiB
    const half = 10 * MiB // above the size whose version is captured before its record
    const clients: PacioMount[] = []
    for (let i = 0; i < K; i++) clients.push(await mountRemote(server, 'vol', join(s.dir, `mnt-${i}`), {configDir: alice()}))
    mounts.push(...clients)
    const blocks = clients.map(() => randomBytes(MiB))
    const content = (i: number) => Buffer.concat(Array.from({length: size / MiB}, (_, k) => {
      const b = Buffer.from(blocks[i])
      b.writeUInt32BE(k, 0) // no two blocks of a file alike
      return b
    }))
    await Promise.all(clients.map(async (m, i) => {
      const data = content(i)
      const fh = await open(join(m.mountpoint, `c${i}`), 'w')
      try {
        for (let off = 0; off < size; off += MiB) {
          await fh.write(data, off, MiB, off)
          if (off + MiB === half) await fh.sync()
        }
      } finally {
        await fh.close()
      }
    }))
    // read back through another client's mount
    for (let i = 0; i < K; i++) expect(sha(await readFile(join(clients[(i + 1) % K].mountpoint, `c${i}`))), `c${i}`).to.equal(sha(content(i)))
    for (const m of mounts.splice(0)) expect(await m.stop(), m.output()).to.equal(0)
    expect(await server.stop(), server.output()).to.equal(0)
    server = undefined

    for (let i = 0; i < K; i++) {
      const h = await paciofs(['history', `/c${i}`, '--volume', vol, '--json'], {configDir: alice()})
      expect(h.code, h.stderr).to.equal(0)
      const versions = (JSON.parse(h.stdout) as {versions: Array<{epoch: number; size?: number; digest?: string; stored?: boolean}>}).versions
      const halfway = versions.find(v => v.size === half)
      expect(halfway, `c${i}: a version of the first ${half} bytes in ${h.stdout}`).to.not.equal(undefined)
      expect(halfway!.digest).to.equal(sha(content(i).subarray(0, half)))
      expect(halfway!.stored, `c${i}: the halfway version was stored`).to.not.equal(false)
      const out = join(s.dir, `c${i}.half`)
      const c = await paciofs(['cat', `/c${i}`, '--volume', vol, '--at', String(halfway!.epoch), '--to', out], {configDir: alice()})
      expect(c.code, c.stderr).to.equal(0)
      expect(sha(await readFile(out))).to.equal(sha(content(i).subarray(0, half)))
      expect(versions.at(-1)).to.include({size, digest: sha(content(i))})
    }
  })

  it('a client under a restarting server gets ENOTCONN quickly, then works again', async () => {
    const vol = join(s.dir, 'vol')
    server = await startServe([vol], {configDir: alice()})
    const port = server.port
    const m = await mountRemote(server, 'vol', join(s.dir, 'mnt'), {configDir: alice()})
    mounts.push(m)
    await writeFile(join(m.mountpoint, 'before'), 'x')
    expect(await server.stop()).to.equal(0)
    server = undefined

    const t0 = Date.now()
    const err = await readdir(m.mountpoint).then(() => undefined, (e: NodeJS.ErrnoException) => e.code)
    // the kernel may answer from its caches for a moment; a fresh name must reach the server
    const err2 = await readFile(join(m.mountpoint, `nothing-${Date.now()}`)).then(() => undefined, (e: NodeJS.ErrnoException) => e.code)
    expect(Date.now() - t0).to.be.below(10_000)
    expect([err, err2]).to.include.oneOf(['ENOTCONN', 'EIO'])

    server = await startServe([vol], {configDir: alice(), port})
    await waitFor('the mount to reconnect', async () => (await readFile(join(m.mountpoint, 'before'), 'utf8').catch(() => '')) === 'x', 20_000)
    await writeFile(join(m.mountpoint, 'after'), 'y')
    expect((await readdir(m.mountpoint)).sort()).to.deep.equal(['after', 'before'])
  })
})
