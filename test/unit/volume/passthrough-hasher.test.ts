/**
 * The binding's hasher (passthrough.h): it runs at idle priority, falls behind
 * rather than take CPU from the writes, and what it leaves is hashed by the
 * writers beyond the lag bound and by catchUp (on the thread pool). The
 * settings are read once per process, so each case runs in a child process
 * with its own environment; the child prints what it saw as JSON.
 */
import {expect} from 'chai'
import {spawnSync} from 'node:child_process'
import {createRequire} from 'node:module'
import {randomBytes, createHash} from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type {Passthrough} from '../../../src/volume/passthrough.js'

const require = createRequire(import.meta.url)
const bindingDir = path.dirname(require.resolve('fuse-native/package.json'))

// writes MIB MiB through tryWrite (as FUSE threads do) in 128 KiB requests, then catchUp and state
const CHILD = `
const fs = require('fs'), crypto = require('crypto'), path = require('path')
const pt = require(process.env.BINDING).passthrough
const {Worker} = require('worker_threads')
// SPIN: every core kept busy by spinning threads meanwhile (an idle-priority hasher gets no CPU)
// (each says when it runs: a worker starts asynchronously, and writes made before the spinners run find idle cores)
const spinners = process.env.SPIN ? Array.from({length: require('os').availableParallelism()}, () =>
  new Worker("require('worker_threads').parentPort.postMessage(0); for (;;) {}", {eval: true})) : []
Promise.all(spinners.map(w => new Promise(r => w.once('message', r)))).then(() => {
const dir = fs.mkdtempSync(path.join(require('os').tmpdir(), 'pacio-hasher-'))
const fd = fs.openSync(path.join(dir, 'f'), 'w+')
pt.attach(fd, fd, pt.PT_HASH)
pt.gate(fd, true)
const data = crypto.randomBytes(Number(process.env.MIB) << 20)
for (let pos = 0; pos < data.length; pos += 128 << 10) pt.tryWrite(fd, data.subarray(pos, pos + (128 << 10)), 128 << 10, pos)
const before = pt.totals()
const policies = () => fs.readdirSync('/proc/self/task').map(t => fs.readFileSync('/proc/self/task/' + t + '/stat', 'utf8'))
  .filter(st => st.slice(st.indexOf('(') + 1, st.lastIndexOf(')')) === 'paciofs-hasher')
  .map(st => Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[38])) // policy: 0 SCHED_OTHER, 5 SCHED_IDLE
Promise.resolve(pt.catchUp(fd)).then(async () => { // (null: under 1 MiB left, state hashes it)
  for (const w of spinners) await w.terminate()
  const s = pt.state(fd)
  pt.detach(fd)
  fs.closeSync(fd)
  fs.rmSync(dir, {recursive: true})
  // the hasher goes back to idle priority once its queue is empty (give it 2 s)
  let hasher = policies()
  for (let i = 0; i < 100 && hasher.some(p => p !== Number(process.env.SETTLE ?? -1)); i++) {
    await new Promise(r => setTimeout(r, 20))
    hasher = policies()
  }
  const sha = crypto.createHash('sha256').update(data).digest('hex')
  console.log(JSON.stringify({right: s.digest === sha, size: s.size, before, after: pt.totals(), hasher}))
})
})
`

interface Seen {
  right: boolean
  size: number
  before: {writerHashed: number; caughtUp: number; hasherRaised: number}
  after: {writerHashed: number; caughtUp: number; fastWrites: number; hasherRaised: number}
  hasher: number[]
}

function child(env: Record<string, string>, mib: number): Seen {
  const r = spawnSync(process.execPath, ['-e', CHILD], {env: {...process.env, ...env, BINDING: bindingDir, MIB: String(mib)}, encoding: 'utf8', timeout: 60_000})
  expect(r.status, r.stderr).to.equal(0)
  return JSON.parse(r.stdout) as Seen
}

describe('the binding\'s hasher: idle priority, lag bound, catchUp', function () {
  this.timeout(60_000)

  it('runs at idle priority (SCHED_IDLE) by default, at normal priority with PACIOFS_HASHER=normal; the digest is exact either way', () => {
    const idle = child({SETTLE: '5'}, 8)
    expect(idle.hasher).to.deep.equal([5])
    expect(idle).to.include({right: true, size: 8 << 20})
    expect(idle.after.fastWrites).to.equal(64)
    const normal = child({PACIOFS_HASHER: 'normal', SETTLE: '0'}, 8)
    expect(normal.hasher).to.deep.equal([0])
    expect(normal).to.include({right: true, size: 8 << 20})
  })

  it('a writer raises the hasher to normal priority when every core is busy (it made no progress), and it goes back to idle after', () => {
    const s = child({SPIN: '1', SETTLE: '5'}, 64)
    expect(s).to.include({right: true, size: 64 << 20})
    expect(s.before.hasherRaised, JSON.stringify(s)).to.be.at.least(1)
    expect(s.hasher).to.deep.equal([5])
  })

  it('without a hasher (PACIOFS_HASHER=off) writers hash what lies beyond the lag bound (PACIOFS_HASH_LAG_MB) and catchUp the rest', () => {
    const s = child({PACIOFS_HASHER: 'off', PACIOFS_HASH_LAG_MB: '1'}, 8)
    expect(s.hasher).to.deep.equal([])
    expect(s).to.include({right: true, size: 8 << 20})
    // at most 1 MiB (+ one request) left behind by the writers: at least 8 - 1 - 1/8 MiB hashed by them
    expect(s.before.writerHashed).to.be.at.least((8 << 20) - (1 << 20) - (128 << 10))
    expect(s.before.caughtUp).to.equal(0)
    // under 1 MiB left after them is hashed by state, inline (catchUp returns null)
    expect(s.after.writerHashed + s.after.caughtUp).to.be.at.least((8 << 20) - (1 << 20))
  })

  it('with the default bound (1 GiB) and no hasher, writers hash nothing and catchUp everything', () => {
    const s = child({PACIOFS_HASHER: 'off'}, 8)
    expect(s).to.include({right: true, size: 8 << 20})
    expect(s.after.writerHashed).to.equal(0)
    expect(s.after.caughtUp).to.equal(8 << 20)
  })
})

describe('catchUp in this process', () => {
  type Binding = Passthrough & {tryWrite(fh: number, buf: Buffer, len: number, pos: number): number | null}
  const pt = (require('fuse-native') as {passthrough: Binding}).passthrough
  let dir: string

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pacio-catchup-'))
  })

  afterEach(() => {
    fs.rmSync(dir, {recursive: true, force: true})
  })

  it('writes that go on during a catchUp end up in the digest', async () => {
    const fd = fs.openSync(path.join(dir, 'f'), 'w+')
    try {
      pt.attach(fd, fd, pt.PT_HASH)
      pt.gate(fd, true)
      const data = randomBytes(12 << 20)
      const step = 128 << 10
      let pos = 0
      for (; pos < 6 << 20; pos += step) pt.tryWrite(fd, data.subarray(pos, pos + step), step, pos)
      const first = pt.catchUp(fd)
      for (; pos < data.length; pos += step) pt.tryWrite(fd, data.subarray(pos, pos + step), step, pos)
      await first
      await pt.catchUp(fd)
      expect(pt.state(fd)).to.include({size: data.length, digest: createHash('sha256').update(data).digest('hex')})
    } finally {
      pt.detach(fd)
      fs.closeSync(fd)
    }
  })

  it('resolves for a handle whose digest was given up (a write out of order) and for one not attached', async () => {
    const fd = fs.openSync(path.join(dir, 'g'), 'w+')
    try {
      pt.attach(fd, fd, pt.PT_HASH)
      pt.gate(fd, true)
      const data = randomBytes(2 << 20)
      pt.tryWrite(fd, data.subarray(0, 1 << 20), 1 << 20, 1 << 20)
      pt.tryWrite(fd, data.subarray(1 << 20), 1 << 20, 0)
      await pt.catchUp(fd)
      expect(pt.state(fd)).to.include({size: 2 << 20, digest: null})
    } finally {
      pt.detach(fd)
      fs.closeSync(fd)
    }

    await pt.catchUp(fd) // detached: nothing to do
    expect(() => pt.catchUp(-1)).to.throw(/bad fh/)
  })
})
