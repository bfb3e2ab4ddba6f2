// Healing a version in the history store from bytes known to be that version:
// missing or damaged chunk files and a missing or altered manifest are
// written anew, damaged files are kept aside, intact ones are left alone.
import {expect} from 'chai'
import {createHash} from 'node:crypto'
import fs from 'node:fs'
import {join} from 'node:path'
import {Healer} from '../../../src/history/heal.js'
import {CHUNK_SIZE, HistoryStore} from '../../../src/history/store.js'
import {makeTempDir, removeTree} from '../../helpers/tmp.js'

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex')

describe('history heal', () => {
  let dir: string
  let store: HistoryStore
  let healer: Healer
  const data = Buffer.alloc(2 * CHUNK_SIZE + 100)
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) % 251
  const digest = sha(data)
  const fdOf = (b: Buffer) => {
    const file = join(dir, `src-${Math.random()}`)
    fs.writeFileSync(file, b)
    return fs.openSync(file, 'r')
  }

  beforeEach(async () => {
    dir = await makeTempDir('history-heal')
    store = new HistoryStore(join(dir, 'history'), {create: true})
    healer = new Healer(store, join(dir, 'aside'))
    await store.put(data)
  })
  afterEach(async () => removeTree(dir))

  it('leaves an intact version alone', () => {
    expect(healer.heal(fdOf(data), digest)).to.deep.equal({chunks: 0, manifest: false, aside: []})
    expect(store.check(digest)).to.equal(undefined)
  })

  it('writes a damaged chunk and a missing manifest anew, keeping the damaged chunk aside', () => {
    const m = store.manifest(digest)
    const bad = store.chunkPath(m.chunks[1])
    fs.writeFileSync(bad, 'tampered')
    fs.rmSync(store.chunkPath(m.chunks[2]))
    fs.rmSync(store.manifestPath(digest))
    expect(store.check(digest)?.kind).to.equal('history-missing')

    const r = healer.heal(fdOf(data), digest)
    expect(r.chunks).to.equal(2)
    expect(r.manifest).to.equal(true)
    expect(r.aside).to.have.length(1)
    expect(fs.readFileSync(join(dir, 'history', r.aside[0]), 'utf8')).to.equal('tampered')
    expect(store.check(digest)).to.equal(undefined)
    expect(fs.readdirSync(join(dir, 'history', 'chunks', m.chunks[1].slice(0, 2))).filter(n => n.endsWith('.tmp'))).to.deep.equal([])
  })

  it('replaces an altered manifest that names other chunks', async () => {
    const other = Buffer.alloc(CHUNK_SIZE, 1)
    const o = await store.put(other)
    const forged = {...store.manifest(digest), chunks: [o.digest, o.digest, o.digest]}
    fs.writeFileSync(store.manifestPath(digest), JSON.stringify(forged))
    expect(store.check(digest)).to.not.equal(undefined)
    const r = healer.heal(fdOf(data), digest)
    expect(r).to.deep.include({chunks: 0, manifest: true})
    expect(store.check(digest)).to.equal(undefined)
    expect(store.check(o.digest)).to.equal(undefined) // the chunk it borrowed is untouched
  })

  it('refuses bytes of another version', () => {
    const other = Buffer.from(data)
    other[5] ^= 1
    expect(() => healer.heal(fdOf(other), digest)).to.throw(/another version/)
  })
})
