// `paciofs repair`: a volume written through a real mount (a separate
// process, always unmounted), changed behind PacioFS's back; verify reports
// it, repair restores it (from the history store, or from a peer serving a
// healthy replica), verify is clean again and the log shows who repaired.
import {expect} from 'chai'
import {createHash} from 'node:crypto'
import fs from 'node:fs'
import {join} from 'node:path'
import {runOk} from '../../helpers/exec.js'
import {mountPacio, paciofs, scratch} from '../../helpers/paciofs.js'
import {startServe} from '../../helpers/remote.js'

interface Finding {
  path: string
  kind: string
}

interface Item {
  path: string
  found: string[]
  done: boolean
  source?: string
  aside?: string
  reason?: string
}

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex')
const pairs = (fs: Finding[]) => fs.map(f => `${f.kind} ${f.path}`).sort()

describe('paciofs repair', function () {
  this.timeout(180_000)
  let area: Awaited<ReturnType<typeof scratch>>
  let config: string
  let withHistory: string // template volumes, copied for each case
  let noHistory: string
  let n = 0

  async function write(mnt: string) {
    const w = async (p: string, s: string) => fs.promises.writeFile(join(mnt, p), s)
    const first = await fs.promises.open(join(mnt, 'doc.txt'), 'w')
    await first.writeFile('first version\n')
    await first.sync() // its record committed: the second version lands in a later block (the history view shows one state per epoch)
    await first.close()
    await fs.promises.appendFile(join(mnt, 'doc.txt'), 'second version\n')
    await fs.promises.link(join(mnt, 'doc.txt'), join(mnt, 'hard.txt'))
    await w('gone.txt', 'to be deleted behind its back')
    await w('mode.txt', 'mode')
    await fs.promises.chmod(join(mnt, 'mode.txt'), 0o640)
    await fs.promises.symlink('doc.txt', join(mnt, 'link'))
    await w('x.txt', 'xattrs')
    await runOk('setfattr', ['-n', 'user.k', '-v', 'the recorded value', join(mnt, 'x.txt')])
    await fs.promises.mkdir(join(mnt, 'sub'))
    await w('sub/deep.txt', 'deep')
    await fs.promises.writeFile(join(mnt, 'big.bin'), Buffer.alloc(3 * 1024 * 1024 + 17, 'b'))
  }

  async function template(name: string, extra: string[]): Promise<string> {
    const vol = join(area.dir, name)
    const m = await mountPacio(vol, join(area.dir, `${name}-mnt`), {configDir: config, extraArgs: extra})
    try {
      await write(m.mountpoint)
    } finally {
      expect(await m.stop()).to.equal(0)
    }

    return vol
  }

  before(async () => {
    area = await scratch('repair')
    config = join(area.dir, 'config')
    withHistory = await template('hist', [])
    noHistory = await template('nohist', ['--no-history'])
  })

  after(async () => area?.dispose())

  async function copy(of: string): Promise<string> {
    const dir = join(area.dir, `case-${n++}`)
    await runOk('cp', ['-a', of, dir])
    return dir
  }

  // copies share their template's volume id: each case keeps its own verify cache
  const cacheOf = (vol: string) => `${vol}-cache`
  const cli = async (args: string[], vol: string) => {
    const res = await paciofs(args, {configDir: config, cacheDir: cacheOf(vol), timeoutMs: 120_000})
    return {...res, stderr: res.stderr.replace(/\s*›\s*/g, ' ')} // oclif wraps error lines
  }

  async function verify(vol: string): Promise<{code: number | null; findings: Finding[]}> {
    const res = await cli(['verify', '--volume', vol, '--json'], vol)
    expect(res.stdout, res.stderr).to.match(/^\{/)
    return {code: res.code, findings: JSON.parse(res.stdout).divergences}
  }

  async function repair(vol: string, extra: string[] = []): Promise<{code: number | null; items: Item[]; report: any; stderr: string}> {
    const res = await cli(['repair', '--volume', vol, '--json', ...extra], vol)
    expect(res.code, res.stderr).to.be.oneOf([0, 1])
    expect(res.stdout, res.stderr).to.match(/^\{/)
    const report = JSON.parse(res.stdout)
    return {code: res.code, items: report.items, report, stderr: res.stderr}
  }

  /** Every way of changing the volume behind PacioFS's back that repair handles. */
  async function tamper(vol: string): Promise<void> {
    await fs.promises.writeFile(join(vol, 'doc.txt'), 'EVIL\n')
    await fs.promises.writeFile(join(vol, 'big.bin'), Buffer.alloc(3 * 1024 * 1024 + 17, 'X'))
    await fs.promises.unlink(join(vol, 'gone.txt'))
    await fs.promises.chmod(join(vol, 'mode.txt'), 0o666)
    await fs.promises.unlink(join(vol, 'link'))
    await fs.promises.symlink('/etc/passwd', join(vol, 'link'))
    await runOk('setfattr', ['-n', 'user.k', '-v', 'forged', join(vol, 'x.txt')])
    await runOk('setfattr', ['-n', 'user.extra', '-v', 'added', join(vol, 'x.txt')])
    await fs.promises.rm(join(vol, 'sub'), {recursive: true})
    await fs.promises.writeFile(join(vol, 'planted.txt'), 'never recorded')
    await fs.promises.mkdir(join(vol, 'planted-dir'))
    await fs.promises.writeFile(join(vol, 'planted-dir', 'inner'), 'x')
  }

  const EXPECTED_FINDINGS = ['link-target /link', 'missing /gone.txt', 'missing /sub', 'missing /sub/deep.txt', 'mode /mode.txt', 'modified /big.bin',
    'modified /doc.txt', 'modified /hard.txt', 'unexpected /planted-dir', 'unexpected /planted-dir/inner', 'unexpected /planted.txt', 'xattr /x.txt']

  async function expectRestored(vol: string): Promise<void> {
    expect(await fs.promises.readFile(join(vol, 'doc.txt'), 'utf8')).to.equal('first version\nsecond version\n')
    expect((await fs.promises.stat(join(vol, 'hard.txt'))).ino).to.equal((await fs.promises.stat(join(vol, 'doc.txt'))).ino) // one inode again
    expect(sha(await fs.promises.readFile(join(vol, 'big.bin')))).to.equal(sha(Buffer.alloc(3 * 1024 * 1024 + 17, 'b')))
    expect(await fs.promises.readFile(join(vol, 'gone.txt'), 'utf8')).to.equal('to be deleted behind its back')
    expect((await fs.promises.stat(join(vol, 'mode.txt'))).mode & 0o7777).to.equal(0o640)
    expect(await fs.promises.readlink(join(vol, 'link'))).to.equal('doc.txt')
    expect(await fs.promises.readFile(join(vol, 'sub', 'deep.txt'), 'utf8')).to.equal('deep')
    expect(fs.existsSync(join(vol, 'planted.txt'))).to.equal(false)
    expect(fs.existsSync(join(vol, 'planted-dir'))).to.equal(false)
    const xattrs = (await runOk('getfattr', ['-d', '--absolute-names', join(vol, 'x.txt')])).stdout
    expect(xattrs).to.contain('user.k="the recorded value"')
    expect(xattrs).not.to.contain('user.extra')
  }

  it('restores every kind of change from the history store, records it, and verify is clean again', async () => {
    const vol = await copy(withHistory)
    const mtimeBefore = (await fs.promises.stat(join(vol, 'doc.txt'))).mtimeMs
    await tamper(vol)
    const before = await verify(vol)
    expect(before.code).to.equal(1)
    expect(pairs(before.findings)).to.deep.equal(EXPECTED_FINDINGS)

    const r = await repair(vol)
    expect(r.code, JSON.stringify(r.report, null, 1)).to.equal(0)
    expect(r.report.status).to.equal('repaired')
    expect(r.items.every(i => i.done)).to.equal(true)
    expect(r.items.find(i => i.path === '/doc.txt')!.source).to.equal('history')
    expect(r.items.find(i => i.path === '/x.txt')!.source).to.equal('history')
    await expectRestored(vol)
    expect(Math.abs((await fs.promises.stat(join(vol, 'doc.txt'))).mtimeMs - mtimeBefore)).to.be.below(1000) // the recorded time, not now

    // nothing deleted: the unexpected entries are in the quarantine
    const planted = r.items.find(i => i.path === '/planted.txt')!
    expect(await fs.promises.readFile(join(vol, '.paciofs', planted.aside!), 'utf8')).to.equal('never recorded')
    expect(await fs.promises.readFile(join(vol, '.paciofs', r.items.find(i => i.path === '/planted-dir')!.aside!, 'inner'), 'utf8')).to.equal('x')

    const after = await verify(vol)
    expect(after.findings).to.deep.equal([])
    expect(after.code).to.equal(0)
    // a full check from scratch agrees
    const full = await cli(['verify', '--volume', vol, '--full', '--cache-dir', `${vol}-other-cache`], vol)
    expect(full.code, full.stdout).to.equal(0)

    const log = await cli(['log', '--volume', vol, '--json'], vol)
    const me = (await cli(['member', 'key'], vol)).stdout.trim()
    const repairs = log.stdout.trim().split('\n').map(l => JSON.parse(l)).filter(e => e.record?.op === 'repair')
    expect(repairs.map(e => e.record.path).sort()).to.deep.equal(['/big.bin', '/doc.txt', '/gone.txt', '/hard.txt', '/link', '/mode.txt', '/planted-dir', '/planted.txt', '/sub', '/sub/deep.txt', '/x.txt'])
    for (const e of repairs) expect(e.record.who.member).to.equal(me)
    const doc = repairs.find(e => e.record.path === '/doc.txt').record
    expect(doc.digest).to.equal(sha('first version\nsecond version\n'))
    expect(doc.repair).to.deep.include({found: ['modified'], source: 'history'})

    // a second repair finds nothing to do
    const again = await repair(vol)
    expect(again.code).to.equal(0)
    expect(again.report.status).to.equal('clean')
  })

  it('--dry-run lists what it would do and changes nothing', async () => {
    const vol = await copy(withHistory)
    await tamper(vol)
    // (verify, and so a dry run, opens the journal read-only: SQLite may leave its -wal and -shm files)
    const listing = async () => (await runOk('find', [vol, '-printf', '%p %s %m %l\n'])).stdout.split('\n').filter(l => !/\.db-(wal|shm) /.test(l)).join('\n')
    const was = await listing()
    const r = await repair(vol, ['--dry-run'])
    expect(r.code).to.equal(0)
    expect(r.report.dryRun).to.equal(true)
    expect(r.items.map(i => i.path).sort()).to.deep.equal(['/big.bin', '/doc.txt', '/gone.txt', '/hard.txt', '/link', '/mode.txt', '/planted-dir', '/planted.txt', '/sub', '/sub/deep.txt', '/x.txt'])
    expect(r.items.every(i => !i.done)).to.equal(true)
    expect(await listing()).to.equal(was)
    expect(pairs((await verify(vol)).findings)).to.deep.equal(EXPECTED_FINDINGS)
    // the human output says the same
    const text = await cli(['repair', '--volume', vol, '--dry-run'], vol)
    expect(text.stdout).to.match(/dry run: 11 path\(s\) would be repaired; nothing was changed/)
  })

  it('without history, restores from a peer serving a healthy replica; --path limits it', async () => {
    const vol = await copy(noHistory)
    const replica = await copy(noHistory)
    await tamper(vol)
    const dry = await repair(vol, ['--dry-run'])
    expect(dry.code).to.equal(1) // no source for the content
    expect(dry.items.find(i => i.path === '/doc.txt')!.reason).to.match(/no source/)

    const served = await startServe([replica], {configDir: config})
    try {
      const name = JSON.parse(fs.readFileSync(join(replica, '.paciofs', 'volume.json'), 'utf8')).name
      const peer = ['--from', served.address, '--peer-volume', name]
      const part = await repair(vol, [...peer, '--path', '/sub'])
      expect(part.code, JSON.stringify(part.report, null, 1)).to.equal(0) // clean below /sub
      expect(part.items.map(i => i.path)).to.deep.equal(['/sub', '/sub/deep.txt'])
      expect((await verify(vol)).code).to.equal(1) // the rest is still divergent
      expect(part.items.find(i => i.path === '/sub/deep.txt')!.source).to.equal('peer')

      const r = await repair(vol, peer)
      expect(r.code, JSON.stringify(r.report, null, 1)).to.equal(0)
      expect(r.items.find(i => i.path === '/doc.txt')!.source).to.equal('peer')
      expect(r.items.find(i => i.path === '/x.txt')!.source).to.equal('peer')
      await expectRestored(vol)
    } finally {
      expect(await served.stop()).to.equal(0)
    }

    expect((await verify(vol)).code).to.equal(0)
    const log = await cli(['log', '--volume', vol, '--json'], vol)
    const doc = log.stdout.trim().split('\n').map(l => JSON.parse(l)).find(e => e.record?.op === 'repair' && e.record.path === '/doc.txt')
    expect(doc.record.repair).to.deep.include({source: 'peer'})
  })

  it('heals the history store: a version from the file on disk that has it, an old one from a peer\'s history', async () => {
    const vol = await copy(withHistory)
    const replica = await copy(withHistory)
    const store = join(vol, '.paciofs', 'history')
    const old = sha('first version\n') // doc.txt's first version: only in the history store now
    const bigChunk = sha(Buffer.alloc(256 * 1024, 'b')) // a chunk of big.bin's (current) version
    await fs.promises.rm(join(store, 'chunks', old.slice(0, 2), old)) // a version of one chunk: the chunk is all the store has of it
    await fs.promises.writeFile(join(store, 'chunks', bigChunk.slice(0, 2), bigChunk), 'tampered chunk')
    const before = await verify(vol)
    expect(pairs(before.findings)).to.deep.equal(['history-missing /doc.txt', 'history-tampered /big.bin'])

    const dry = await repair(vol, ['--dry-run'])
    expect(dry.code, JSON.stringify(dry.report, null, 1)).to.equal(1)
    expect(dry.items.find(i => i.path === '/big.bin')!.source).to.equal('disk')
    expect(dry.items.find(i => i.path === '/doc.txt')!.reason).to.match(/no source/)

    // without a peer: the current version is healed from the file, the old one is left
    const own = await repair(vol)
    expect(own.code, JSON.stringify(own.report, null, 1)).to.equal(1)
    const big = own.items.find(i => i.path === '/big.bin')!
    expect(big).to.deep.include({done: true, source: 'disk'})
    expect(await fs.promises.readFile(join(vol, '.paciofs', big.aside!, 'chunks', bigChunk.slice(0, 2), bigChunk), 'utf8')).to.equal('tampered chunk')
    expect(own.items.find(i => i.path === '/doc.txt')!.reason).to.match(/no source has version sha256 [0-9a-f]{16}.*no peer given/)
    expect(pairs(own.report.after.divergences)).to.deep.equal(['history-missing /doc.txt'])

    const served = await startServe([replica], {configDir: config})
    try {
      const name = JSON.parse(fs.readFileSync(join(replica, '.paciofs', 'volume.json'), 'utf8')).name
      const r = await repair(vol, ['--from', served.address, '--peer-volume', name, '--full'])
      expect(r.code, JSON.stringify(r.report, null, 1)).to.equal(0)
      expect(r.items.map(i => [i.path, i.source, i.done])).to.deep.equal([['/doc.txt', 'peer', true]])
    } finally {
      expect(await served.stop()).to.equal(0)
    }

    const full = await cli(['verify', '--volume', vol, '--full', '--cache-dir', `${vol}-other-cache`], vol)
    expect(full.code, full.stdout).to.equal(0)
    const cat = await cli(['cat', '/doc.txt', '--volume', vol, '--at', String(JSON.parse((await cli(['history', '/doc.txt', '--volume', vol, '--json'], vol)).stdout).versions[0].epoch)], vol)
    expect(cat.stdout).to.equal('first version\n')
    const log = await cli(['log', '--volume', vol, '--json'], vol)
    const repairs = log.stdout.trim().split('\n').map(l => JSON.parse(l)).filter(e => e.record?.op === 'repair').map(e => e.record)
    expect(repairs.map(r => [r.path, r.digest, r.repair.found[0], r.repair.source]).sort()).to.deep.equal([
      ['/big.bin', sha(Buffer.alloc(3 * 1024 * 1024 + 17, 'b')), 'history-tampered', 'disk'],
      ['/doc.txt', old, 'history-missing', 'peer']])
  })

  it('refuses a peer whose bytes do not match the record, and says so', async () => {
    const vol = await copy(noHistory)
    const replica = await copy(noHistory)
    await fs.promises.writeFile(join(vol, 'doc.txt'), 'EVIL\n')
    await fs.promises.writeFile(join(replica, 'doc.txt'), 'ALSO EVIL\n') // a damaged replica
    const served = await startServe([replica], {configDir: config})
    try {
      const name = JSON.parse(fs.readFileSync(join(replica, '.paciofs', 'volume.json'), 'utf8')).name
      const r = await repair(vol, ['--from', served.address, '--peer-volume', name])
      expect(r.code).to.equal(1)
      const item = r.items.find(i => i.path === '/doc.txt')!
      expect(item.done).to.equal(false)
      expect(item.reason).to.match(/has other bytes there \(sha256 [0-9a-f]{16}/)
      expect(r.report.after.divergences.map((d: Finding) => `${d.kind} ${d.path}`)).to.deep.equal(['modified /doc.txt', 'modified /hard.txt'])
      expect(r.items.find(i => i.path === '/hard.txt')!.done).to.equal(false) // not linked to a name whose repair failed
    } finally {
      expect(await served.stop()).to.equal(0)
    }

    expect(await fs.promises.readFile(join(vol, 'doc.txt'), 'utf8')).to.equal('EVIL\n') // untouched
    const log = await cli(['log', '--volume', vol, '--json'], vol)
    expect(log.stdout).not.to.contain('"repair"')
  })

  it('leaves a path whose record was tampered with, and repairs the rest', async () => {
    const vol = await copy(withHistory)
    await fs.promises.writeFile(join(vol, 'doc.txt'), 'EVIL\n')
    await fs.promises.unlink(join(vol, 'gone.txt'))
    const db = join(vol, '.paciofs', 'journal.db')
    const row = (await runOk('sqlite3', [db, "SELECT jseq, hex(record) FROM records WHERE path = '/doc.txt' AND op = 'write' ORDER BY jseq DESC LIMIT 1"])).stdout.trim().split('|')
    const record = JSON.parse(Buffer.from(row[1], 'hex').toString())
    const forged = Buffer.from(JSON.stringify({...record, digest: sha('EVIL\n'), size: 5})).toString('hex')
    await runOk('sqlite3', [db, `UPDATE records SET record = X'${forged}' WHERE jseq = ${row[0]}`])
    const r = await repair(vol)
    expect(r.code).to.equal(1)
    expect(r.items.find(i => i.path === '/doc.txt')!.reason).to.match(/tampered/)
    expect(r.items.find(i => i.path === '/gone.txt')!.done).to.equal(true)
    expect(await fs.promises.readFile(join(vol, 'doc.txt'), 'utf8')).to.equal('EVIL\n')
  })

  it('repairs nothing when the ledger itself is broken', async () => {
    const vol = await copy(withHistory)
    await fs.promises.writeFile(join(vol, 'doc.txt'), 'EVIL\n')
    await runOk('sqlite3', [join(vol, '.paciofs', 'ledger.db'),
      "UPDATE blocks SET payloads = CAST(substr(payloads, 1, 60) || X'00' || substr(payloads, 62) AS BLOB) WHERE epoch = 2"])
    const r = await repair(vol)
    expect(r.code).to.equal(1)
    expect(r.items.length).to.be.above(0)
    for (const i of r.items) expect(i.reason).to.match(/the ledger cannot be trusted/)
    expect(r.items.find(i => i.path === '')!.found).to.include('ledger-broken')
    expect(await fs.promises.readFile(join(vol, 'doc.txt'), 'utf8')).to.equal('EVIL\n')
    expect((await cli(['log', '--volume', vol, '--json'], vol)).stdout).not.to.contain('"repair"')
  })

  it('refuses a mounted volume and bad input with exit status 2 and a clear reason', async () => {
    const vol = await copy(withHistory)
    const m = await mountPacio(vol, join(area.dir, 'busy-mnt'), {configDir: config})
    try {
      const busy = await cli(['repair', '--volume', vol], vol)
      expect(busy.code).to.equal(2)
      expect(busy.stderr).to.match(/mounted or served by process \d+; repair needs it at rest/)
    } finally {
      expect(await m.stop()).to.equal(0)
    }

    const none = await cli(['repair', '--volume', join(area.dir, 'nope')], vol)
    expect(none.code).to.equal(2)
    expect(none.stderr).to.match(/not a PacioFS volume/)
    const half = await cli(['repair', '--volume', vol, '--from', '127.0.0.1:1'], vol)
    expect(half.code).to.equal(2)
    expect(half.stderr).to.match(/peer-volume/)
    const bad = await cli(['repair', '--volume', vol, '--from', 'nohost', '--peer-volume', 'x'], vol)
    expect(bad.code).to.equal(2)
    expect(bad.stderr).to.match(/--from must be HOST:PORT/)
    const rel = await cli(['repair', '--volume', vol, '--path', 'sub'], vol)
    expect(rel.code).to.equal(2)
    expect(rel.stderr).to.match(/--path must be a volume path/)
  })
})
