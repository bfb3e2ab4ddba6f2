// Version history on a real mount: v1, v2, delete; `history` lists the three
// events, `cat --at` returns each version's bytes, the .paciofs-history view
// shows the old tree read-only, and a tampered or missing stored chunk is
// reported by verify and refused by cat.
import {expect} from 'chai'
import {randomBytes} from 'node:crypto'
import fs from 'node:fs'
import {join} from 'node:path'
import {mountPacio, paciofs, scratch, type PacioMount} from '../../helpers/paciofs.js'
import {runNode} from '../../helpers/exec.js'

interface Version {epoch: number; since?: number; op: string; path: string; size?: number; digest?: string; author?: {uid: number}; from?: string; to?: string}

/** Writes a file and fsyncs it (fsync waits until its records are on the ledger), in a child process. */
async function writeSynced(file: string, data: Buffer): Promise<void> {
  const r = await runNode(`const fs = require('fs'); const data = fs.readFileSync(0); const fd = fs.openSync(process.argv[1], 'w'); fs.writeSync(fd, data); fs.fsyncSync(fd); fs.closeSync(fd)`,
    [file], {input: data})
  expect(r.code, r.stderr).to.equal(0)
}

async function syncDir(dir: string): Promise<void> {
  const r = await runNode(`const fs = require('fs'); const fd = fs.openSync(process.argv[1], 'r'); fs.fsyncSync(fd); fs.closeSync(fd)`, [dir])
  expect(r.code, r.stderr).to.equal(0)
}

describe('version history (real FUSE mount)', function () {
  this.timeout(120_000)
  let area: Awaited<ReturnType<typeof scratch>>
  let mount: PacioMount | undefined
  const v1 = Buffer.concat([Buffer.from('version one\n'), randomBytes(700 * 1024)])
  const v2 = Buffer.from(v1)
  v2.write('VERSION TWO', 300 * 1024)
  let versions: Version[] = []

  before(async () => {
    area = await scratch('history')
    mount = await mountPacio(area.volume, area.mnt)
    fs.mkdirSync(join(area.mnt, 'docs'))
    await writeSynced(join(area.mnt, 'docs/a.bin'), v1)
    await writeSynced(join(area.mnt, 'docs/a.bin'), v2)
    fs.writeFileSync(join(area.mnt, 'docs/keep.txt'), 'kept\n')
    fs.unlinkSync(join(area.mnt, 'docs/a.bin'))
    await syncDir(join(area.mnt, 'docs'))
  })

  after(async () => {
    if (mount && (await mount.stop()) !== 0) console.error(mount.output())
    await area?.dispose()
  })

  const cli = (args: string[]) => paciofs([...args, '--volume', area.volume])

  it('history lists created, modified and deleted, with epochs, authors, sizes and digests (also while mounted)', async () => {
    const res = await cli(['history', '/docs/a.bin', '--json'])
    expect(res.code, res.stderr).to.equal(0)
    versions = JSON.parse(res.stdout).versions
    expect(versions.map(v => v.op), res.stdout).to.deep.equal(['created', 'modified', 'deleted'])
    expect(versions[0].size).to.equal(v1.length)
    expect(versions[1].size).to.equal(v2.length)
    expect(versions[0].digest).to.not.equal(versions[1].digest)
    expect(versions[0].epoch).to.be.lessThan(versions[1].epoch)
    expect(versions[1].epoch).to.be.lessThan(versions[2].epoch)
    expect(versions.every(v => v.author?.uid === 0)).to.equal(true)
    const table = await cli(['history', '/docs/a.bin'])
    expect(table.code).to.equal(0)
    expect(table.stdout).to.include('deleted')
  })

  it('the .paciofs-history view shows the old tree and refuses writes with EROFS', async () => {
    const [e1, e2, e3] = versions.map(v => v.epoch)
    const h = join(area.mnt, '.paciofs-history')
    expect(fs.readdirSync(area.mnt), 'not listed in the root').to.not.include('.paciofs-history')
    expect(fs.readdirSync(h)).to.include(String(e1))
    expect(fs.readdirSync(join(h, String(e1), 'docs'))).to.include('a.bin')
    expect(fs.readFileSync(join(h, String(e1), 'docs/a.bin')).equals(v1)).to.equal(true)
    expect(fs.readFileSync(join(h, String(e2), 'docs/a.bin')).equals(v2)).to.equal(true)
    expect(fs.readdirSync(join(h, String(e3), 'docs'))).to.deep.equal(['keep.txt'])
    expect(fs.statSync(join(h, String(e2), 'docs/a.bin')).size).to.equal(v2.length)
    for (const attempt of [
      () => fs.writeFileSync(join(h, String(e1), 'docs/a.bin'), 'x'),
      () => fs.writeFileSync(join(h, String(e1), 'docs/new.txt'), 'x'),
      () => fs.mkdirSync(join(h, String(e1), 'newdir')),
      () => fs.unlinkSync(join(h, String(e1), 'docs/a.bin')),
      () => fs.renameSync(join(area.mnt, 'docs/keep.txt'), join(h, String(e1), 'docs/k.txt')),
      () => fs.mkdirSync(join(area.mnt, '.paciofs-history', 'x')),
    ]) {
      expect(attempt).to.throw().with.property('code', 'EROFS')
    }

    expect(() => fs.statSync(join(h, '999999999'))).to.throw().with.property('code', 'ENOENT')
    expect(() => fs.statSync(join(h, 'abc'))).to.throw().with.property('code', 'ENOENT')
  })

  describe('then, unmounted', () => {
    before(async () => {
      expect(await mount!.stop()).to.equal(0)
      mount = undefined
    })

    it('cat --at returns the bytes of the version current at each epoch', async () => {
      const [e1, e2] = versions.map(v => v.epoch)
      for (const [epoch, want] of [[e1, v1], [e2, v2], [e3Minus1(), v2]] as Array<[number, Buffer]>) {
        const res = await cli(['cat', '/docs/a.bin', '--at', String(epoch)])
        expect(res.code, res.stderr).to.equal(0)
        expect(res.stdoutBytes.equals(want), `content at epoch ${epoch}`).to.equal(true)
      }

      const out = join(area.dir, 'v1.out')
      const res = await cli(['cat', '/docs/a.bin', '--at', String(e1), '--to', out])
      expect(res.code, res.stderr).to.equal(0)
      expect(fs.readFileSync(out).equals(v1)).to.equal(true)
    })

    function e3Minus1(): number {
      return versions[2].epoch - 1
    }

    it('bad input: unknown path, before it existed, after it was deleted, past the head, malformed epoch', async () => {
      const [e1, , e3] = versions.map(v => v.epoch)
      const cases: Array<[string[], RegExp]> = [
        [['cat', '/docs/nope', '--at', String(e1)], /no such path/],
        [['history', '/docs/nope'], /no such path/],
        [['cat', '/docs/a.bin', '--at', String((versions[0].since ?? e1) - 1)], /did not exist yet at epoch/],
        [['cat', '/docs/a.bin', '--at', String(e3)], /did not exist at epoch .*deleted at epoch/],
        [['cat', '/docs/a.bin', '--at', '99999999'], /after the ledger's head/],
        [['cat', '/docs/a.bin', '--at', 'yesterday'], /must be a block epoch/],
        [['cat', '/docs/a.bin', '--at', '-3'], /must be a block epoch/],
        [['cat', '/docs', '--at', String(e1)], /not a file/],
      ]
      for (const [args, message] of cases) {
        const res = await cli(args)
        expect(res.code, `${args.join(' ')}: ${res.stderr}`).to.not.equal(0)
        expect(res.stderr, args.join(' ')).to.match(message)
        expect(res.stdout).to.equal('')
      }
    })

    it('history --stats accounts for stored bytes and deduplication', async () => {
      const res = await cli(['history', '--stats', '--json'])
      expect(res.code, res.stderr).to.equal(0)
      const s = JSON.parse(res.stdout)
      expect(s.logicalBytes).to.be.at.least(v1.length + v2.length)
      expect(s.savedBytes, 'v2 shares all but one chunk with v1').to.be.at.least(v1.length - 256 * 1024 - 1)
      expect(s.storedBytes).to.be.lessThan(v1.length + v2.length)
    })

    it('verify is clean; a tampered chunk and a missing one are reported with path and epoch, and cat refuses', async () => {
      const clean = await cli(['verify', '--full', '--json'])
      expect(clean.code, clean.stdout).to.equal(0)

      const store = join(area.volume, '.paciofs/history')
      const manifest = (d: string) => JSON.parse(fs.readFileSync(join(store, 'manifests', d.slice(0, 2), `${d}.json`), 'utf8'))
      const chunk = (h: string) => join(store, 'chunks', h.slice(0, 2), h)
      const m1 = manifest(versions[0].digest!)
      const m2 = manifest(versions[1].digest!)
      const only1 = m1.chunks.find((h: string) => !m2.chunks.includes(h))
      const only2 = m2.chunks.find((h: string) => !m1.chunks.includes(h))
      const bytes = fs.readFileSync(chunk(only1))
      bytes[0] ^= 1
      fs.writeFileSync(chunk(only1), bytes)
      fs.rmSync(chunk(only2))

      const res = await cli(['verify', '--full', '--json'])
      expect(res.code).to.equal(1)
      const findings = JSON.parse(res.stdout).divergences.map((d: {path: string; kind: string; record?: {epoch: number}}) => ({path: d.path, kind: d.kind, epoch: d.record?.epoch}))
      expect(findings).to.deep.equal([
        {path: '/docs/a.bin', kind: 'history-tampered', epoch: versions[0].epoch},
        {path: '/docs/a.bin', kind: 'history-missing', epoch: versions[1].epoch},
      ])
      // the next (incremental) verify still reports them: no verified index is kept over a damaged store
      const again = await cli(['verify', '--json'])
      expect(again.code, again.stdout).to.equal(1)
      expect(JSON.parse(again.stdout).divergences.map((d: {kind: string}) => d.kind)).to.deep.equal(['history-tampered', 'history-missing'])

      const cat = await cli(['cat', '/docs/a.bin', '--at', String(versions[0].epoch)])
      expect(cat.code).to.not.equal(0)
      expect(cat.stderr).to.match(/refusing[\s\S]*does not match its hash/)
      expect(cat.stdout).to.equal('')
      const out = join(area.dir, 'refused.out')
      const to = await cli(['cat', '/docs/a.bin', '--at', String(versions[1].epoch), '--to', out])
      expect(to.code).to.not.equal(0)
      expect(to.stderr).to.match(/refusing[\s\S]*missing/)
      expect(fs.existsSync(out), 'nothing written').to.equal(false)
    })
  })
})
