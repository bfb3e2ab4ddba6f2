// A served volume answers creates and unlinks once they are in its op log
// (src/volume/oplog.ts, LocalVolume.useOpLog) and journals their records
// behind: kill -9 of the server loses none that a client saw answered, and
// the records recovered from the log name the client's member.
import {expect} from 'chai'
import {spawn} from 'node:child_process'
import fs from 'node:fs'
import {join} from 'node:path'
import {childEnv} from '../../helpers/exec.js'
import {paciofs, scratch, type PacioMount} from '../../helpers/paciofs.js'
import {member, memberKey, mountRemote, startServe, type Served} from '../../helpers/remote.js'

interface LogLine {
  record?: {op: string; path: string; who: {member: string}}
  hash: string
}

const CHURN = `
const fs = require('fs'), dir = process.argv[1]
fs.mkdirSync(dir, {recursive: true})
for (let i = 0; ; i++) {
  try {
    fs.writeFileSync(dir + '/f' + i, i % 3 === 0 ? 'file ' + i + '\\n' : '')
    process.stdout.write('c ' + i + '\\n')
    if (i % 2 === 1) {
      fs.unlinkSync(dir + '/f' + (i - 1))
      process.stdout.write('u ' + (i - 1) + '\\n')
    }
  } catch (e) { process.exit(0) }
}`

describe('paciofs serve: creates and unlinks in the op log', function () {
  this.timeout(180_000)
  let s: Awaited<ReturnType<typeof scratch>>
  let server: Served | undefined
  const mounts: PacioMount[] = []

  beforeEach(async () => {
    s = await scratch('remote-oplog')
  })

  afterEach(async () => {
    for (const m of mounts.splice(0)) await m.stop().catch(() => m.kill())
    if (server) await server.stop()
    server = undefined
    await s.dispose()
  })

  it('after kill -9 of the server: every create and unlink a client saw answered is on the ledger, once, by its member, and the disk agrees', async () => {
    const alice = join(s.dir, 'alice')
    const bob = join(s.dir, 'bob')
    const vol = join(s.dir, 'vol')
    server = await startServe([vol], {configDir: alice})
    const port = server.port
    const bobKey = await memberKey(bob)
    expect((await member('add', [bobKey, '--server', server.address, '--volume', 'vol'], alice)).code).to.equal(0)
    const m = await mountRemote(server, 'vol', join(s.dir, 'mnt'), {configDir: bob})
    mounts.push(m)

    const churn = spawn(process.execPath, ['-e', CHURN, join(m.mountpoint, 'k')], {env: childEnv(), stdio: ['ignore', 'pipe', 'ignore']})
    let out = ''
    churn.stdout.on('data', d => (out += d))
    const done = new Promise(r => churn.on('close', r))
    await new Promise(r => setTimeout(r, 2500))
    await server.kill()
    server = undefined
    await done
    const lines = out.split('\n').filter(Boolean)
    const created = lines.filter(l => l.startsWith('c ')).map(l => Number(l.slice(2)))
    const unlinked = new Set(lines.filter(l => l.startsWith('u ')).map(l => Number(l.slice(2))))
    expect(created.length, 'files created before the kill').to.be.greaterThan(20)
    expect(unlinked.size, 'files unlinked before the kill').to.be.greaterThan(10)
    await mounts.pop()!.stop().catch(() => {})

    // the restart journals what the op log holds beyond the journal's mark
    server = await startServe([vol], {configDir: alice, port})
    expect(await server.stop(), server.output()).to.equal(0)
    server = undefined

    const r = await paciofs(['log', '--volume', vol, '--json'], {configDir: alice})
    expect(r.code, r.stderr).to.equal(0)
    const log = r.stdout.trim().split('\n').filter(Boolean).map(l => JSON.parse(l) as LogLine)
    expect(new Set(log.map(e => e.hash)).size, 'no record twice on the ledger').to.equal(log.length)
    const byPath = new Map<string, Array<{op: string; member: string}>>()
    for (const e of log) if (e.record) byPath.set(e.record.path, [...(byPath.get(e.record.path) ?? []), {op: e.record.op, member: e.record.who.member}])
    for (const i of created) {
      const ops = byPath.get(`/k/f${i}`) ?? []
      expect(ops[0]?.op, `first record of acknowledged /k/f${i}`).to.equal('create')
      expect(ops.filter(o => o.op === 'create'), `/k/f${i} created once`).to.have.length(1)
      expect(ops.every(o => o.member === bobKey), `/k/f${i}'s records name bob`).to.equal(true)
      if (unlinked.has(i)) {
        expect(ops.at(-1)?.op, `last record of /k/f${i}, acknowledged unlinked: ${JSON.stringify(ops.map(o => o.op))}`).to.equal('unlink')
        expect(fs.existsSync(join(vol, 'k', `f${i}`)), `/k/f${i} gone`).to.equal(false)
      }
    }

    const v = await paciofs(['verify', '--volume', vol, '--json'], {configDir: alice, cacheDir: join(s.dir, 'vcache')})
    const report = JSON.parse(v.stdout)
    expect(report.divergences.filter((d: {kind: string}) => d.kind !== 'interrupted'), v.stdout.slice(0, 2000)).to.deep.equal([])
  })
})
