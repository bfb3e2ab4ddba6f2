// The tamper matrix: a volume is written through a real mount, then changed
// behind PacioFS's back, one way per test; verify must report exactly that
// change, with the right path and kind, and nothing else.
import {expect} from 'chai'
import fs from 'node:fs'
import {join} from 'node:path'
import {runOk} from '../../helpers/exec.js'
import {REPO, mountPacio, paciofs, scratch} from '../../helpers/paciofs.js'

interface Finding {
  path: string
  kind: string
  record?: {epoch: number}
}

const sql = (db: string, query: string) => runOk('sqlite3', [db, query])

describe('verify: the tamper matrix', function () {
  this.timeout(120_000)
  let area: Awaited<ReturnType<typeof scratch>>
  let template: string // a clean volume, copied for each case
  let oldFiles: string // the files as they were before the last change (for rollback)
  let n = 0

  before(async () => {
    area = await scratch('tamper')
    const m1 = await mountPacio(area.volume, area.mnt)
    // each file is fsync'ed, which commits its records in a block of their own: the
    // ledger cases below need blocks 4 and 5 to exist whatever the broadcast window
    const w = async (p: string, s: string) => {
      await fs.promises.writeFile(join(area.mnt, p), s)
      const fh = await fs.promises.open(join(area.mnt, p), 'r')
      await fh.sync()
      await fh.close()
    }
    try {
      await w('doc.txt', 'original content\n')
      await w('same.txt', 'abcd')
      await w('gone.txt', 'to be deleted')
      await w('ren.txt', 'to be renamed')
      await w('mode.txt', 'mode')
      await fs.promises.chmod(join(area.mnt, 'mode.txt'), 0o640)
      await w('own.txt', 'owner')
      await fs.promises.symlink('doc.txt', join(area.mnt, 'link'))
      await w('x.txt', 'xattrs')
      await runOk('setfattr', ['-n', 'user.k', '-v', 'v', join(area.mnt, 'x.txt')])
      await fs.promises.mkdir(join(area.mnt, 'emptydir'))
      await fs.promises.mkdir(join(area.mnt, 'sub'))
      await w('sub/deep.txt', 'deep')
    } finally {
      expect(await m1.stop()).to.equal(0)
    }

    oldFiles = join(area.dir, 'old-files')
    await runOk('rsync', ['-aX', '--exclude', '/.paciofs', `${area.volume}/`, `${oldFiles}/`])
    const m2 = await mountPacio(area.volume, area.mnt)
    try {
      await fs.promises.appendFile(join(area.mnt, 'doc.txt'), 'second version\n')
    } finally {
      expect(await m2.stop()).to.equal(0)
    }

    template = join(area.dir, 'template')
    await runOk('cp', ['-a', area.volume, template])
  })

  after(async () => area?.dispose())

  async function tamperedCopy(): Promise<string> {
    const dir = join(area.dir, `case-${n++}`)
    await runOk('cp', ['-a', template, dir])
    return dir
  }

  async function verify(vol: string, extra: string[] = []): Promise<{code: number | null; findings: Finding[]}> {
    // copies share the template's volume id: check all history every time (the verified index is tested in incremental.test.ts)
    const res = await paciofs(['verify', '--volume', vol, '--json', '--full', ...extra])
    expect(res.stdout, res.stderr).to.match(/^\{/)
    return {code: res.code, findings: JSON.parse(res.stdout).divergences}
  }

  const pairs = (f: Finding[]) => f.map(d => `${d.kind} ${d.path}`).sort()

  it('the untouched copy is clean', async () => {
    const {code, findings} = await verify(await tamperedCopy())
    expect(findings).to.deep.equal([])
    expect(code).to.equal(0)
  })

  const fileCases: Array<[string, (v: string) => Promise<unknown>, string[]]> = [
    ['edit bytes, same size', v => fs.promises.writeFile(join(v, 'same.txt'), 'abce'), ['modified /same.txt']],
    ['edit bytes, other size', v => fs.promises.appendFile(join(v, 'doc.txt'), 'forged line\n'), ['modified /doc.txt']],
    ['delete a file', v => fs.promises.rm(join(v, 'gone.txt')), ['missing /gone.txt']],
    ['add a file', v => fs.promises.writeFile(join(v, 'added.txt'), 'x'), ['unexpected /added.txt']],
    ['rename a file', v => fs.promises.rename(join(v, 'ren.txt'), join(v, 'ren2.txt')), ['missing /ren.txt', 'unexpected /ren2.txt']],
    ['chmod', v => fs.promises.chmod(join(v, 'mode.txt'), 0o666), ['mode /mode.txt']],
    ['chown', v => fs.promises.chown(join(v, 'own.txt'), 123, 456), ['owner /own.txt']],
    ['change a symlink target', async v => {
      await fs.promises.rm(join(v, 'link'))
      await fs.promises.symlink('same.txt', join(v, 'link'))
    }, ['link-target /link']],
    ['change an xattr', v => runOk('setfattr', ['-n', 'user.k', '-v', 'forged', join(v, 'x.txt')]), ['xattr /x.txt']],
    ['remove an empty directory', v => fs.promises.rmdir(join(v, 'emptydir')), ['missing /emptydir']],
    ['restore an old copy of the backing directory (rollback)', v => runOk('rsync', ['-aX', '--delete', '--exclude', '/.paciofs', `${oldFiles}/`, `${v}/`]), ['modified /doc.txt']],
  ]
  for (const [name, tamper, expected] of fileCases) {
    it(name, async () => {
      const vol = await tamperedCopy()
      await tamper(vol)
      const {code, findings} = await verify(vol)
      expect(pairs(findings)).to.deep.equal(expected)
      expect(code).to.equal(1)
      for (const f of findings) if (f.kind !== 'unexpected') expect(f.record?.epoch, 'names the record that says what should be there').to.be.a('number')
    })
  }

  it('edit a journal record so that it matches a tampered file', async () => {
    const vol = await tamperedCopy()
    await fs.promises.writeFile(join(vol, 'same.txt'), 'EVIL')
    const db = join(vol, '.paciofs', 'journal.db')
    const row = (await sql(db, "SELECT jseq, hex(record) FROM records WHERE path = '/same.txt' AND op = 'write'")).stdout.trim().split('|')
    const record = JSON.parse(Buffer.from(row[1], 'hex').toString())
    const digest = (await runOk('sha256sum', [join(vol, 'same.txt')])).stdout.split(' ')[0]
    const forged = Buffer.from(JSON.stringify({...record, digest}).replace(/\s/g, '')).toString('hex')
    await sql(db, `UPDATE records SET record = X'${forged}' WHERE jseq = ${row[0]}`)
    const {code, findings} = await verify(vol)
    expect(pairs(findings)).to.deep.equal(['record-tampered /same.txt'])
    expect(code).to.equal(1)
  })

  it('delete a journal record', async () => {
    const vol = await tamperedCopy()
    const db = join(vol, '.paciofs', 'journal.db')
    await sql(db, "DELETE FROM records WHERE path = '/mode.txt' AND op = 'chmod'")
    const {code, findings} = await verify(vol)
    // the ledger still holds the record's hash; without the record, the file's mode no longer matches what the rest say
    expect(pairs(findings)).to.deep.equal(['mode /mode.txt', 'record-missing '])
    expect(code).to.equal(1)
  })

  const ledgerOnly = (findings: Finding[], kinds: string[]) => {
    expect(findings.length).to.be.greaterThan(0)
    for (const f of findings) {
      expect(f.path, `no file-level finding: ${JSON.stringify(f)}`).to.equal('')
      expect(kinds).to.include(f.kind)
    }
  }

  it('alter a block payload', async () => {
    const vol = await tamperedCopy()
    const db = join(vol, '.paciofs', 'ledger.db')
    await sql(db, "UPDATE blocks SET payloads = CAST(substr(payloads, 1, 60) || X'00' || substr(payloads, 62) AS BLOB) WHERE epoch = 5")
    const {code, findings} = await verify(vol)
    ledgerOnly(findings, ['ledger-broken', 'signature-invalid', 'sequence-gap'])
    expect(findings.filter(f => f.kind === 'ledger-broken').map(f => f.record?.epoch)).to.include(5)
    expect(code).to.equal(1)
  })

  it('drop a block in the middle', async () => {
    const vol = await tamperedCopy()
    await sql(join(vol, '.paciofs', 'ledger.db'), 'DELETE FROM blocks WHERE epoch = 4')
    const {code, findings} = await verify(vol)
    ledgerOnly(findings, ['ledger-broken', 'sequence-gap'])
    expect(findings.filter(f => f.kind === 'ledger-broken').map(f => f.record?.epoch)).to.include(4)
    expect(code).to.equal(1)
  })

  async function checkpointOf(vol: string): Promise<string> {
    const res = await paciofs(['log', '--volume', vol, '--checkpoint'])
    expect(res.code, res.stderr).to.equal(0)
    const file = join(area.dir, `cp-${n++}.json`)
    await fs.promises.writeFile(file, res.stdout)
    return file
  }

  it('truncate the last blocks: caught with a checkpoint', async () => {
    const vol = await tamperedCopy()
    const cp = await checkpointOf(vol)
    const head = JSON.parse(fs.readFileSync(cp, 'utf8')).epoch
    const db = join(vol, '.paciofs', 'ledger.db')
    await sql(db, `DELETE FROM blocks WHERE epoch > ${head - 3}`)
    const {code, findings} = await verify(vol, ['--checkpoint', cp])
    ledgerOnly(findings, ['checkpoint-inconsistent', 'ledger-broken'])
    expect(findings.map(f => f.kind)).to.include('checkpoint-inconsistent')
    expect(code).to.equal(1)
  })

  it('re-create the whole ledger with a new key: caught with a checkpoint', async () => {
    const vol = await tamperedCopy()
    const cp = await checkpointOf(vol)
    await runOk(process.execPath, ['--import', 'tsx', join(REPO, 'test', 'integration', 'audit', 'rebuild-ledger.ts'), vol], {cwd: REPO})
    const without = await verify(vol)
    expect(without.findings, 'a consistent forgery passes without a checkpoint').to.deep.equal([])
    const {code, findings} = await verify(vol, ['--checkpoint', cp])
    expect(pairs(findings)).to.deep.equal(['checkpoint-inconsistent '])
    expect(code).to.equal(1)
  })

  it('bad input: missing volume, foreign dir, malformed or foreign checkpoint, mounted volume: exit 2, nothing written', async () => {
    const vol = await tamperedCopy()
    const before = (await runOk('sh', ['-c', `find ${vol} -printf '%p %s %T@\\n' | sort | sha256sum`])).stdout
    expect((await paciofs(['verify', '--volume', join(area.dir, 'nope')])).code).to.equal(2)
    const foreign = join(area.dir, `foreign-${n++}`)
    fs.mkdirSync(foreign)
    expect((await paciofs(['verify', '--volume', foreign])).code).to.equal(2)
    const bad = join(area.dir, 'bad.json')
    fs.writeFileSync(bad, '{not json')
    const r1 = await paciofs(['verify', '--volume', vol, '--checkpoint', bad])
    expect(r1.code).to.equal(2)
    expect(r1.stderr).to.match(/not valid JSON/)
    const other = await checkpointOf(area.volume)
    const otherCp = JSON.parse(fs.readFileSync(other, 'utf8'))
    fs.writeFileSync(other, JSON.stringify({...otherCp, ledgerId: '00000000-0000-0000-0000-000000000000'}))
    const r2 = await paciofs(['verify', '--volume', vol, '--checkpoint', other])
    expect(r2.code).to.equal(2)
    expect(r2.stderr).to.match(/another volume/)
    const after = (await runOk('sh', ['-c', `find ${vol} -printf '%p %s %T@\\n' | sort | sha256sum`])).stdout
    expect(after, 'verify wrote nothing to the volume').to.equal(before)

    const m = await mountPacio(vol, join(area.dir, `mnt-${n++}`))
    try {
      const r3 = await paciofs(['verify', '--volume', vol])
      expect(r3.code).to.equal(2)
      expect(r3.stderr).to.match(/mounted/)
    } finally {
      expect(await m.stop()).to.equal(0)
    }

  })
})
