// The pieces verify's speed rests on, each against a plain reference: the
// anchor table against a Map, the streamed replay against a sorted replay,
// the compact verified index against the tree it saved, the journal's
// salt ‖ record column against the two columns, and the worker pool's
// hashes and history checks against node:crypto and HistoryStore.check.
import {expect} from 'chai'
import {createHash, randomBytes} from 'node:crypto'
import fs from 'node:fs'
import {join} from 'node:path'
import {Anchors} from '../../../src/audit/anchors.js'
import {loadIndex, saveIndex} from '../../../src/audit/cache.js'
import {ExpectedTree} from '../../../src/audit/expected.js'
import {WorkerPool} from '../../../src/audit/pool.js'
import {Replay} from '../../../src/audit/replay.js'
import {scanTree, type ActualEntry} from '../../../src/audit/scan.js'
import {CHUNK_SIZE, HistoryStore} from '../../../src/history/store.js'
import {Journal} from '../../../src/volume/journal.js'
import {STATE_DIR} from '../../../src/volume/layout.js'
import type {FsRecord} from '../../../src/volume/types.js'
import {makeTempDir, removeTree} from '../../helpers/tmp.js'

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
const who = {uid: 0, gid: 0, pid: 1, member: 'm'.repeat(64)}
const rec = (r: Partial<FsRecord> & Pick<FsRecord, 'op' | 'path'>): FsRecord => ({v: 1, who, at: 1, ...r})
const ref = (epoch: number) => ({epoch, txid: `tx${epoch}`, author: 'a'})

describe('verify internals', () => {
  describe('the anchor table', () => {
    it('finds every key a Map finds, across growth, duplicates and payloads that are not 32 bytes', () => {
      const a = new Anchors()
      const reference = new Map<string, number>()
      const keys: Buffer[] = []
      for (let i = 0; i < 5000; i++) {
        const k = i % 997 === 5 ? randomBytes(7) : randomBytes(32)
        keys.push(k)
        a.add(k, Math.floor(i / 100), `tx${Math.floor(i / 100)}`, 'p')
        reference.set(k.toString('hex'), i)
      }

      a.add(keys[10], 99, 'again', 'p') // a second copy stands for the first
      reference.set(keys[10].toString('hex'), 5000)
      for (const [hex, pos] of reference) expect(a.get(Buffer.from(hex, 'hex'))).to.equal(pos)
      expect(a.get(randomBytes(32))).to.equal(undefined)
      expect(a.get(randomBytes(5))).to.equal(undefined)
      expect(a.ref(250)).to.deep.equal({epoch: 2, txid: 'tx2', author: 'p'})
      expect(a.ref(5000)).to.deep.equal({epoch: 99, txid: 'again', author: 'p'})

      for (let i = 0; i < 5000; i++) if (i !== 10 && i !== 4321 && i !== 5 && i !== 997 + 5) a.markMatched(i)
      a.markMatched(5000)
      const left = [...a.unmatched()].map(([pos, key]) => [pos, key.toString('hex')])
      expect(left).to.deep.equal([[5, keys[5].toString('hex')], [1002, keys[1002].toString('hex')], [4321, keys[4321].toString('hex')]])
      expect([...a.all()].map(k => k.toString('hex'))).to.deep.equal([...keys, keys[10]].map(k => k.toString('hex')))
    })
  })

  describe('the streamed replay', () => {
    const records = [
      rec({op: 'mkdir', path: '/d', type: 'dir', mode: 0o40755}),
      rec({op: 'create', path: '/d/f', type: 'file', mode: 0o100644}),
      rec({op: 'write', path: '/d/f', size: 1, digest: 'a'.repeat(64)}),
      rec({op: 'rename', path: '/d/f', to: '/d/g'}),
      rec({op: 'create', path: '/d/f', type: 'file', mode: 0o100600}),
      rec({op: 'write', path: '/d/g', size: 2, digest: 'b'.repeat(64)}),
      rec({op: 'unlink', path: '/d/f'}),
      rec({op: 'chmod', path: '/d/g', mode: 0o100640, xattrs: {'user.k': 'c'.repeat(64)}}),
    ]

    const sorted = () => {
      const t = new ExpectedTree()
      records.forEach((r, i) => t.apply(r, ref(i)))
      return t
    }

    it('gives the tree of a sorted replay whatever order the journal yields, skipping tampered positions', () => {
      for (const order of [[0, 1, 2, 3, 4, 5, 6, 7], [7, 6, 5, 4, 3, 2, 1, 0], [1, 0, 3, 2, 5, 4, 7, 6], [2, 0, 1, 7, 3, 5, 4, 6]]) {
        const t = new ExpectedTree()
        const r = new Replay(t)
        for (const i of order) r.add(i, records[i], ref(i))
        r.finish()
        expect([...t.entries], `order ${order}`).to.deep.equal([...sorted().entries])
        expect(r.applied).to.equal(records.length)
      }

      // position 4 tampered (skipped), position 6 missing from the journal (never comes)
      const expected = new ExpectedTree()
      records.forEach((rr, i) => i !== 4 && i !== 6 && expected.apply(rr, ref(i)))
      const t = new ExpectedTree()
      const r = new Replay(t)
      for (const i of [5, 4, 0, 1, 2, 3, 7]) (i === 4 ? r.skip(4) : r.add(i, records[i], ref(i)))
      r.finish()
      expect([...t.entries]).to.deep.equal([...expected.entries])
    })
  })

  describe('files on disk', () => {
    let dir: string
    beforeEach(async () => {
      dir = await makeTempDir('verify-parts')
    })
    afterEach(() => removeTree(dir))

    it('the verified index gives back the tree it saved: hard links share one inode, xattrs, interrupted writes, references', () => {
      const t = new ExpectedTree()
      t.apply(rec({op: 'mkdir', path: '/d', type: 'dir', mode: 0o40755, uid: 1, gid: 2}), ref(1))
      t.apply(rec({op: 'create', path: '/d/f', type: 'file', mode: 0o100644, size: 0, digest: sha(Buffer.alloc(0))}), ref(2))
      t.apply(rec({op: 'link', path: '/d/f', to: '/d/h'}), ref(3))
      t.apply(rec({op: 'setxattr', path: '/d/f', xattrs: {'user.a': 'e'.repeat(64), 'user.\n"odd': 'f'.repeat(64)}}), {...ref(4), uid: 7, op: 'setxattr'})
      t.apply(rec({op: 'symlink', path: '/d/l', type: 'symlink', target: '../x y\n'}), ref(5))
      t.apply(rec({op: 'create', path: '/w', type: 'file', mode: 0o100600, writing: true}), ref(6))
      t.apply(rec({op: 'mknod', path: '/fifo', type: 'fifo', mode: 0o10644, rdev: 0}), ref(7))
      const checkpoint = {ledgerId: 'vol-1', epoch: 7, headHash: 'h'.repeat(64), time: 1, producer: 'p', signature: 's'}
      const checker = {v: 1 as const, nextEpoch: 8, senders: {p: {seq: 3, id: 'i', recent: [[3, 'i']] as Array<[number, string]>}}}
      saveIndex(dir, {checkpoint, checker, maxJseq: 42, anchoredRows: 9, tree: t})
      const back = loadIndex(dir, 'vol-1')!
      expect(back.checkpoint).to.deep.equal(checkpoint)
      expect(back.checker).to.deep.equal(checker)
      expect(back.maxJseq).to.equal(42)
      expect(back.anchoredRows).to.equal(9)
      const plain = (tr: ExpectedTree) => JSON.parse(JSON.stringify([...tr.entries].map(([p, n]) => [p, {...n, xattrs: n.xattrs && [...n.xattrs]}])))
      expect(plain(back.tree)).to.deep.equal(plain(t))
      expect(back.tree.entries.get('/d/f')!.xattrs!.get('user.\n"odd')).to.equal('f'.repeat(64))
      expect(back.tree.entries.get('/d/f')).to.equal(back.tree.entries.get('/d/h'))
      expect(loadIndex(dir, 'vol-2')).to.equal(undefined)
      const file = join(dir, fs.readdirSync(dir)[0])
      fs.writeFileSync(file, fs.readFileSync(file, 'utf8').slice(0, -30))
      expect(loadIndex(dir, 'vol-1'), 'a truncated index is no index').to.equal(undefined)
    })

    it('the journal hands out salt ‖ record exactly, NUL bytes and all', () => {
      const j = Journal.open(join(dir, 'journal.db'), 'vol-1')
      const rows = Array.from({length: 300}, (_, i) => {
        const salt = randomBytes(32)
        if (i % 3 === 0) salt[5] = 0
        const record = Buffer.from(JSON.stringify({i, s: 'ü\u0000x'}))
        return {hash: createHash('sha256').update(salt).update(record).digest(), salt, record, op: 'write', path: `/f${i}`, at: i}
      })
      j.append(rows)
      let n = 0
      for (const [jseq, hash, saltLength, salted] of j.auditRows(0)) {
        const r = rows[jseq - 1]
        expect(hash.equals(r.hash)).to.equal(true)
        expect(saltLength).to.equal(32)
        expect(salted.equals(Buffer.concat([r.salt, r.record]))).to.equal(true)
        n++
      }

      expect(n).to.equal(rows.length)
      expect(j.auditRowByHash(rows[7].hash)![0]).to.equal(8)
      expect([...j.auditRows(290)].map(r => r[0])).to.deep.equal([291, 292, 293, 294, 295, 296, 297, 298, 299, 300])
      j.close()
    })

    it('the worker pool hashes files of every size around its buffer and checks stored versions as HistoryStore.check does', async function () {
      this.timeout(60_000)
      const root = join(dir, 'vol')
      fs.mkdirSync(join(root, STATE_DIR, 'history'), {recursive: true})
      fs.mkdirSync(join(root, 'sub'))
      const sizes = [0, 1, 4095, 4096, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 * (1 << 20) + 17]
      const want = new Map<string, string>()
      for (const s of sizes) {
        const b = randomBytes(s)
        fs.writeFileSync(join(root, 'sub', `f${s}`), b)
        want.set(`/sub/f${s}`, sha(b))
      }

      fs.symlinkSync('f1', join(root, 'sub', 'link'))
      fs.writeFileSync(join(root, STATE_DIR, 'not-scanned'), 'x')
      const store = new HistoryStore(join(root, STATE_DIR, 'history'), {create: true})
      const good = await store.put(randomBytes(2 * CHUNK_SIZE + 5))
      const bad = await store.put(randomBytes(CHUNK_SIZE + 1))
      const chunk = store.chunkPath(store.manifest(bad.digest).chunks[1])
      fs.writeFileSync(chunk, Buffer.concat([fs.readFileSync(chunk), Buffer.from('!')]))
      const gone = await store.put(randomBytes(100))
      fs.rmSync(store.manifestPath(gone.digest))

      const pool = new WorkerPool(2, join(root, STATE_DIR, 'history'))
      try {
        const seen = new Map<string, ActualEntry>()
        await scanTree(pool, root, (p, e) => seen.set(p, e))
        expect([...seen.keys()].sort()).to.deep.equal(['/', '/sub', '/sub/link', ...[...want.keys()]].sort())
        for (const [p, digest] of want) expect(seen.get(p)!.digest, p).to.equal(digest)
        expect(seen.get('/sub/link')).to.include({type: 'symlink', target: 'f1'})

        const digests = [good.digest, bad.digest, gone.digest]
        const got: unknown[] = []
        await pool.run('history', digests, (idx, out) => idx.forEach((i, k) => (got[i] = out[k] || undefined)))
        for (const [i, d] of digests.entries()) expect(got[i], d).to.deep.equal(await store.check(d))
        expect(got[0]).to.equal(undefined)
        expect(got[1]).to.include({kind: 'history-tampered'})
        expect(got[2]).to.include({kind: 'history-missing'})
      } finally {
        await pool.close()
      }
    })
  })
})
