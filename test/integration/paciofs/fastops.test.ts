// Creates and unlinks answered by the FUSE binding (op log, src/volume/oplog.ts):
// recorded in order with the operations around them, nothing acknowledged lost
// on kill -9, and readers refuse a volume whose op log is ahead of its journal.
import {expect} from 'chai'
import {spawn} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import {childEnv, runNode} from '../../helpers/exec.js'
import {mountPacio, paciofs, REPO, scratch} from '../../helpers/paciofs.js'
import {encodeOpLogEntry} from '../../../src/volume/oplog.js'

interface LogLine {record: {op: string; path: string; to?: string; uid?: number; gid?: number; writing?: boolean; digest?: string}; hash: string}

async function logOf(volume: string): Promise<LogLine[]> {
  const res = await paciofs(['log', '--volume', volume, '--json'])
  expect(res.code, res.stderr).to.equal(0)
  return res.stdout.trim().split('\n').filter(Boolean).map(l => JSON.parse(l))
}

function opsByPath(entries: LogLine[]): Map<string, string[]> {
  const byPath = new Map<string, string[]>()
  for (const e of entries) {
    byPath.set(e.record.path, [...(byPath.get(e.record.path) ?? []), e.record.op])
    if (e.record.to) byPath.set(e.record.to, [...(byPath.get(e.record.to) ?? []), `${e.record.op}-to`])
  }

  return byPath
}

const CHURN = `
const fs = require('fs'), dir = process.argv[1], n = +process.argv[2]
fs.mkdirSync(dir, {recursive: true})
for (let i = 0; n < 0 || i < n; i++) {
  try {
    fs.writeFileSync(dir + '/f' + i, 'file ' + i + '\\n')
    process.stdout.write('c ' + i + '\\n')
    if (i % 2 === 1) {
      fs.unlinkSync(dir + '/f' + (i - 1))
      process.stdout.write('u ' + (i - 1) + '\\n')
    }
  } catch (e) { process.exit(0) }
}`

describe('creates and unlinks answered by the binding (op log)', function () {
  this.timeout(180_000)

  it('are made by the binding, recorded in order with the operations around them, and verify clean', async () => {
    const area = await scratch('fastops')
    const stats = path.join(area.dir, 'stats.json')
    try {
      const m = await mountPacio(area.volume, area.mnt, {env: {PACIOFS_PASSTHROUGH_STATS: stats}})
      try {
        await runNode(CHURN, [`${area.mnt}/c`, '200'])
        // an unlink while nothing else runs in the volume (the churn's unlinks are made by the binding only
        // when no operation handed to JS runs and no digest is being taken, which timing decides)
        fs.writeFileSync(`${area.mnt}/c/idle`, 'idle\n')
        await new Promise(resolve => setTimeout(resolve, 1000))
        fs.unlinkSync(`${area.mnt}/c/idle`)
        // operations the volume makes right after the binding's: each sees the create before it
        fs.writeFileSync(`${area.mnt}/c/r`, 'renamed\n')
        fs.renameSync(`${area.mnt}/c/r`, `${area.mnt}/c/r2`)
        fs.writeFileSync(`${area.mnt}/c/m`, 'chmod\n')
        fs.chmodSync(`${area.mnt}/c/m`, 0o600)
        fs.writeFileSync(`${area.mnt}/c/gone`, 'x')
        fs.unlinkSync(`${area.mnt}/c/gone`)
        fs.writeFileSync(`${area.mnt}/c/gone`, 'again\n') // the same name made anew after its unlink
      } finally {
        expect(await m.stop()).to.equal(0)
      }

      const fast = JSON.parse(fs.readFileSync(stats, 'utf8')).fast
      expect(fast.creates, 'creates made by the binding').to.be.at.least(200)
      expect(fast.unlinks, 'unlinks made by the binding').to.be.at.least(1)

      const entries = await logOf(area.volume)
      expect(new Set(entries.map(e => e.hash)).size).to.equal(entries.length)
      const byPath = opsByPath(entries)
      // (a file unlinked before the kernel sent its release has no digest: the unlink is its last record)
      const noWrite = (ops: string[] | undefined) => ops?.filter(o => o !== 'write')
      for (let i = 0; i < 200; i++) {
        const ops = byPath.get(`/c/f${i}`)
        if (i % 2 === 0) expect(noWrite(ops), `/c/f${i}`).to.deep.equal(['create', 'unlink'])
        else expect(ops, `/c/f${i}`).to.deep.equal(['create', 'write'])
      }

      expect(noWrite(byPath.get('/c/idle'))).to.deep.equal(['create', 'unlink'])
      expect(byPath.get('/c/r')).to.deep.equal(['create', 'write', 'rename'])
      expect(byPath.get('/c/m')).to.deep.equal(['create', 'write', 'chmod'])
      expect(noWrite(byPath.get('/c/gone'))).to.deep.equal(['create', 'unlink', 'create'])
      expect(byPath.get('/c/gone')?.at(-1)).to.equal('write')
      expect(fs.readFileSync(path.join(area.volume, '.paciofs', 'oplog')).length, 'op log in use').to.be.greaterThan(0)

      const v = await paciofs(['verify', '--volume', area.volume, '--json'])
      expect(v.code, v.stdout.slice(0, 2000)).to.equal(0)
    } finally {
      await area.dispose()
    }
  })

  it('made just before the mount is stopped, they are journaled before the journal closes', async () => {
    const area = await scratch('fastops-stop')
    try {
      const m = await mountPacio(area.volume, area.mnt)
      const N = 40
      fs.mkdirSync(`${area.mnt}/s`)
      for (let i = 0; i < N; i++) fs.writeFileSync(`${area.mnt}/s/f${i}`, `f${i}\n`)
      for (let i = 0; i < N; i += 2) fs.unlinkSync(`${area.mnt}/s/f${i}`)
      // no wait after the last answer: SIGTERM at once
      expect(await m.stop()).to.equal(0)

      const byPath = opsByPath(await logOf(area.volume))
      for (let i = 0; i < N; i++) {
        const ops = byPath.get(`/s/f${i}`) ?? []
        expect(ops[0], `/s/f${i}`).to.equal('create')
        if (i % 2 === 0) expect(ops.at(-1), `/s/f${i}`).to.equal('unlink')
      }

      const v = await paciofs(['verify', '--volume', area.volume, '--json'])
      expect(JSON.parse(v.stdout).status, v.stdout.slice(0, 2000)).to.equal('clean')
    } finally {
      await area.dispose()
    }
  })

  it('after kill -9: every acknowledged create and unlink is on the ledger, once, and the disk agrees', async () => {
    const area = await scratch('fastops-crash')
    try {
      const first = await mountPacio(area.volume, area.mnt)
      const churn = spawn(process.execPath, ['-e', CHURN, `${area.mnt}/k`, '-1'], {env: childEnv(), stdio: ['ignore', 'pipe', 'ignore']})
      let out = ''
      churn.stdout.on('data', d => (out += d))
      const done = new Promise(r => churn.on('close', r))
      await new Promise(r => setTimeout(r, 2000))
      await first.kill() // SIGKILL, then fusermount -uz
      await done
      const lines = out.split('\n').filter(Boolean)
      const created = lines.filter(l => l.startsWith('c ')).map(l => Number(l.slice(2)))
      const unlinked = new Set(lines.filter(l => l.startsWith('u ')).map(l => Number(l.slice(2))))
      expect(created.length, 'files created before the kill').to.be.greaterThan(20)
      expect(unlinked.size, 'files unlinked before the kill').to.be.greaterThan(10)

      const second = await mountPacio(area.volume, area.mnt)
      expect(await second.stop()).to.equal(0)

      const entries = await logOf(area.volume)
      expect(new Set(entries.map(e => e.hash)).size, 'no record twice on the ledger').to.equal(entries.length)
      const byPath = opsByPath(entries)
      for (const i of created) {
        const ops = byPath.get(`/k/f${i}`) ?? []
        expect(ops[0], `first record of acknowledged /k/f${i}`).to.equal('create')
        expect(ops.filter(o => o === 'create'), `/k/f${i} created once`).to.have.length(1)
        if (unlinked.has(i)) {
          expect(ops.at(-1), `last record of /k/f${i}, acknowledged unlinked`).to.equal('unlink')
          expect(fs.existsSync(path.join(area.volume, 'k', `f${i}`)), `/k/f${i} gone`).to.equal(false)
        }
      }

      const v = await paciofs(['verify', '--volume', area.volume, '--json'])
      const report = JSON.parse(v.stdout)
      expect(report.divergences.filter((d: {kind: string}) => d.kind !== 'interrupted'), v.stdout.slice(0, 2000)).to.deep.equal([])
      expect(v.code).to.equal(0)
    } finally {
      await area.dispose()
    }
  })

  it('stop at 256 waiting for the journal: a creator then waits until the journal has caught up (each holds memory and an fd)', async () => {
    const area = await scratch('fastops-backlog')
    const N = 600
    try {
      const m = await mountPacio(area.volume, area.mnt)
      let locker: ReturnType<typeof spawn> | undefined
      let creator: ReturnType<typeof spawn> | undefined
      try {
        fs.mkdirSync(`${area.mnt}/b`)
        // another process holds the journal's write lock for 4 s: the mount journals nothing meanwhile
        const LOCK = `const D = require('better-sqlite3'); const db = new D(process.argv[1]); db.exec('BEGIN IMMEDIATE');
process.stdout.write('locked\\n'); setTimeout(() => { db.exec('COMMIT'); db.close() }, 4000)`
        locker = spawn(process.execPath, ['-e', LOCK, path.join(area.volume, '.paciofs', 'journal.db')], {cwd: REPO, env: childEnv(), stdio: ['ignore', 'pipe', 'inherit']})
        await new Promise<void>((resolve, reject) => {
          locker!.stdout!.on('data', d => String(d).includes('locked') && resolve())
          locker!.on('exit', code => reject(new Error(`locker exited ${code}`)))
        })
        // files created and held open (no release): only the op log's backlog can stop the binding
        const CREATE = `const fs = require('fs'), dir = process.argv[1], fds = []
for (let i = 0; i < +process.argv[2]; i++) fds.push(fs.openSync(dir + '/f' + i, 'w'))
for (const fd of fds) fs.closeSync(fd)`
        creator = spawn(process.execPath, ['-e', CREATE, `${area.mnt}/b`, String(N)], {env: childEnv(), stdio: 'ignore'})
        const done = new Promise<number | null>(resolve => creator!.on('exit', code => resolve(code)))
        await new Promise(resolve => setTimeout(resolve, 2500))
        const whileLocked = fs.readdirSync(path.join(area.volume, 'b')).length // the backing dir, not the mount
        expect(whileLocked, 'files made while the journal was locked').to.be.at.least(1).and.at.most(260)
        expect(await done, 'the creator, once the journal is free').to.equal(0)
      } finally {
        creator?.kill('SIGKILL')
        locker?.kill('SIGKILL')
        expect(await m.stop()).to.equal(0)
      }

      const creates = (await logOf(area.volume)).filter(e => e.record.op === 'create' && e.record.path.startsWith('/b/f'))
      expect(new Set(creates.map(e => e.record.path)).size).to.equal(N)
      const v = await paciofs(['verify', '--volume', area.volume, '--json'])
      expect(v.code, v.stdout.slice(0, 2000)).to.equal(0)
    } finally {
      await area.dispose()
    }
  })

  it('verify and log refuse a volume whose op log holds operations the journal lacks; a mount journals them', async () => {
    const area = await scratch('fastops-ahead')
    try {
      const m = await mountPacio(area.volume, area.mnt)
      fs.writeFileSync(`${area.mnt}/before`, 'x\n')
      expect(await m.stop()).to.equal(0)

      // what a kill -9 right after the binding answered a create leaves: the file, its entry, no record
      const log = path.join(area.volume, '.paciofs', 'oplog')
      fs.writeFileSync(path.join(area.volume, 'late'), '')
      fs.writeFileSync(log, encodeOpLogEntry({seq: 1_000_000, at: Date.now() - 1000, op: 'create', path: '/late', who: {uid: 65534, gid: 65534, pid: 1},
        mode: 0o100640, uid: 65534, gid: 65534, flags: 1}))
      fs.chownSync(path.join(area.volume, 'late'), 65534, 65534)
      fs.chmodSync(path.join(area.volume, 'late'), 0o640)

      const v = await paciofs(['verify', '--volume', area.volume])
      expect(v.code, v.stdout + v.stderr).to.equal(2)
      const said = v.stderr.replace(/\s*\n\s*(›\s*)?/g, ' ') // oclif wraps long lines
      expect(said).to.match(/1 operation\(s\) made before a crash and not yet in the journal \(first: create \/late\)/)
      expect(said).to.match(/mount the volume once/)
      const l = await paciofs(['log', '--volume', area.volume])
      expect(l.code).to.not.equal(0)
      expect(l.stderr).to.match(/not yet in the journal/)

      const again = await mountPacio(area.volume, area.mnt)
      expect(await again.stop()).to.equal(0)
      const late = (await logOf(area.volume)).filter(e => e.record.path === '/late')
      expect(late.map(e => [e.record.op, e.record.uid, e.record.writing])).to.deep.equal([['create', 65534, true]])
      const after = await paciofs(['verify', '--volume', area.volume, '--json'])
      const report = JSON.parse(after.stdout)
      expect(report.divergences.filter((d: {kind: string}) => d.kind !== 'interrupted'), after.stdout.slice(0, 2000)).to.deep.equal([])
    } finally {
      await area.dispose()
    }
  })
})
