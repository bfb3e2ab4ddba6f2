// The pieces verify's speed rests on, each against a plain reference: the
// anchor table against a Map, the streamed replay against a sorted replay,
// the compact verified index against the tree it saved, the journal's
// salt ‖ record column against the two columns, and the worker pool's
// hashes and history checks against node:crypto and HistoryStore.check.
import {expect} from 'chai'
import {createHash, randomBytes} from 'node:crypto'
import {spawnSync} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import {dirname, join} from 'node:path'
import {Anchors} from '../../../src/audit/anchors.js'
import {loadIndex, saveIndex} from '../../../src/audit/cache.js'
import {ExpectedTree} from '../../../src/audit/expected.js'
import {HistoryJobs} from '../../../src/audit/history.js'
import {WorkerPool} from '../../../src/audit/pool.js'
import {Replay} from '../../../src/audit/replay.js'
import {RowReader} from '../../../src/audit/rows.js'
import {scanTree, type ActualEntry} from '../../../src/audit/scan.js'
import {CHUNK_SIZE, EMPTY_DIGEST, HistoryStore} from '../../../src/history/store.js'
import {Journal} from '../../../src/volume/journal.js'
import {STATE_DIR} from '../../../src/volume/layout.js'
import {READ_LSTAT, READ_META, sys} from '../../../src/volume/sys.js'
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

    it('addAll (a transaction\'s payloads at once, views of one buffer as the envelope scanner hands them) gives the table add gives', () => {
      const one = new Anchors()
      const many = new Anchors()
      const all: Buffer[] = []
      for (let tx = 0; tx < 40; tx++) {
        const n = tx === 7 ? 3000 : 1 + (tx % 5) * 50
        const backing = randomBytes(n * 32)
        const payloads = Array.from({length: n}, (_, i) => (i === 3 && tx % 2 ? randomBytes(9) : backing.subarray(i * 32, i * 32 + 32)))
        if (tx === 9) payloads.push(all[5]) // a payload seen before
        for (const p of payloads) one.add(p, tx, `tx${tx}`, `p${tx % 3}`)
        many.addAll(payloads, tx, `tx${tx}`, `p${tx % 3}`)
        all.push(...payloads.map(p => Buffer.from(p)))
        backing.fill(0) // the table keeps copies, not views
      }

      many.addAll([], 99, 'none', 'p')
      expect(many.size).to.equal(one.size)
      const again = all.findLastIndex(p => p.equals(all[5]))
      expect(again).to.be.greaterThan(5)
      expect(many.get(all[5])).to.equal(again)
      expect(one.get(all[5])).to.equal(again)
      expect([...many.all()]).to.deep.equal([...one.all()])
      for (let pos = 0; pos < one.size; pos += 37) expect(many.ref(pos)).to.deep.equal(one.ref(pos))
      expect([...many.unmatched()]).to.deep.equal([...one.unmatched()])
      expect(many.recordRef(0, 'x'.repeat(64), 5, 'write')).to.deep.equal({...one.ref(0), author: 'x'.repeat(64), uid: 5, op: 'write'})
    })

    it('recordRef: records of one transaction with the same author, uid and op share one reference, anything else gets its own', () => {
      const a = new Anchors()
      a.addAll(Array.from({length: 40}, () => randomBytes(32)), 3, 'tx-a', 'p')
      a.addAll(Array.from({length: 40}, () => randomBytes(32)), 4, 'tx-b', 'p')
      const alice = 'a'.repeat(64)
      const w1 = a.recordRef(0, alice, 1, 'write')
      expect(w1).to.deep.equal({epoch: 3, txid: 'tx-a', author: alice, uid: 1, op: 'write'})
      expect(a.recordRef(1, 'a'.repeat(64), 1, 'write')).to.equal(w1) // another string of the same author
      const others = [a.recordRef(2, alice, 1, 'create'), a.recordRef(3, alice, 2, 'write'), a.recordRef(4, alice, undefined, 'write'), a.recordRef(5, 'b'.repeat(64), 1, 'write')]
      expect(new Set([w1, ...others]).size).to.equal(5)
      expect(others.map(r => [r.epoch, r.txid, r.author, r.uid, r.op])).to.deep.equal([[3, 'tx-a', alice, 1, 'create'], [3, 'tx-a', alice, 2, 'write'],
        [3, 'tx-a', alice, undefined, 'write'], [3, 'tx-a', 'b'.repeat(64), 1, 'write']])
      // the next transaction: a reference of its own, with its epoch and txid
      const w2 = a.recordRef(40, alice, 1, 'write')
      expect(w2).to.not.equal(w1)
      expect(w2).to.deep.equal({epoch: 4, txid: 'tx-b', author: alice, uid: 1, op: 'write'})
      // more kinds than are kept per transaction: each still right
      for (let uid = 0; uid < 40; uid++) expect(a.recordRef(41, alice, uid, 'chmod')).to.deep.equal({epoch: 4, txid: 'tx-b', author: alice, uid, op: 'chmod'})
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

    it('RowReader: each row\'s salted hash checked from strings, every verdict the bytes\' own (invalid UTF-8, U+FFFD, large records)', () => {
      const j = Journal.open(join(dir, 'journal-rr.db'), 'vol-1')
      const rows = Array.from({length: 200}, (_, i) => {
        const salt = randomBytes(i % 7 === 0 ? 16 : 32)
        const text = i % 50 === 3 ? JSON.stringify({i, big: 'x'.repeat(70_000)}) : JSON.stringify({i, s: i % 5 === 0 ? 'ü\uFFFD\u0000x' : 'plain'})
        const record = Buffer.from(text)
        return {hash: createHash('sha256').update(salt).update(record).digest(), salt, record, op: 'write', path: `/f${i}`, at: i}
      })
      // tampered: an invalid byte where U+FFFD was (reads as the same text), another invalid byte, a changed character
      const fffd = Buffer.from('\uFFFD')
      const at5 = rows[5].record.indexOf(fffd)
      rows[5].record = Buffer.concat([rows[5].record.subarray(0, at5), Buffer.from([0xff]), rows[5].record.subarray(at5 + fffd.length)])
      rows[6].record = Buffer.concat([rows[6].record.subarray(0, 3), Buffer.from([0xc3]), rows[6].record.subarray(3)])
      rows[7].record = Buffer.from(rows[7].record.toString().replace('plain', 'plaiN'))
      j.append(rows)
      const reader = new RowReader(j)
      const seen: Array<[number, boolean, string, string]> = []
      for (const r of reader.after(0)) seen.push([r.jseq, r.ok, r.hash.toString('hex'), r.actual])
      expect(seen.map(s => s[0])).to.deep.equal(rows.map((_, i) => i + 1))
      for (const [jseq, ok, hash, actual] of seen) {
        const r = rows[jseq - 1]
        const truth = sha(Buffer.concat([r.salt, r.record]))
        expect(hash, `row ${jseq}`).to.equal(r.hash.toString('hex'))
        expect(actual, `row ${jseq}`).to.equal(truth)
        expect(ok, `row ${jseq}`).to.equal(truth === hash)
      }

      expect(seen.filter(s => !s[1]).map(s => s[0])).to.deep.equal([6, 7, 8])
      expect(reader.exact, 'rows read again from their bytes: U+FFFD, mismatches, large').to.be.greaterThan(40)
      expect(reader.exact).to.be.lessThan(100)
      expect([...reader.after(195)].length).to.equal(5)
      j.close()
    })

    it('sys.readFiles: lstat, xattr list length and bytes per path; stops where the buffer is full; never follows a link when scanning', () => {
      const d = join(dir, 'rf')
      fs.mkdirSync(d)
      fs.writeFileSync(join(d, 'a'), 'hello')
      fs.writeFileSync(join(d, 'b'), Buffer.alloc(40, 1))
      fs.writeFileSync(join(d, 'c'), 'xyz')
      fs.symlinkSync('a', join(d, 'l'))
      sys.lsetxattr(join(d, 'c'), 'user.k', Buffer.from('value'), 0)
      const paths = ['a', 'b', 'c', 'l', 'nope', ''].map(n => join(d, n))
      const out = new Float64Array(paths.length * READ_META)
      const data = Buffer.alloc(64)
      expect(sys.readFiles(paths, 0, paths.length, READ_LSTAT, null, data, out)).to.equal(paths.length)
      const at = (i: number) => Array.from(out.subarray(i * READ_META, (i + 1) * READ_META))
      const a = fs.lstatSync(paths[0])
      expect(at(0)).to.deep.equal([0, a.mode, a.uid, a.gid, 5, 0, 0, 5, 0])
      expect(data.toString('utf8', 0, 5)).to.equal('hello')
      expect(at(1).slice(6, 8)).to.deep.equal([5, 40])
      expect(at(2)[5]).to.be.above(0) // has xattrs: the caller reads them
      expect(at(2).slice(6, 8)).to.deep.equal([45, 3])
      expect(at(3)[1] & 0o170000).to.equal(0o120000) // the link itself, not read
      expect(at(3)[7]).to.equal(-1)
      expect(at(4)[0]).to.equal(os.constants.errno.ENOENT)
      expect(at(5)[1] & 0o170000).to.equal(0o040000) // the directory d/

      // a 16-byte buffer: 'a' (6 bytes asked) fits, 'b' (41) does not and is not the first: stop there
      expect(sys.readFiles(paths, 0, paths.length, READ_LSTAT, null, Buffer.alloc(16), out)).to.equal(1)
      // first of a call and too large: not read (-1), the call goes on
      expect(sys.readFiles(paths, 1, 3, READ_LSTAT, null, Buffer.alloc(16), out)).to.equal(3)
      expect(at(0)[7]).to.equal(-1)
      expect(at(1).slice(6, 8)).to.deep.equal([0, 3])

      // without lstat: expected lengths; longer than expected is -1, shorter is what is there; none expected: up to 64 KiB
      const exp = Float64Array.from([5, 39, 10, -1])
      expect(sys.readFiles(paths, 0, 5, 0, exp, data, out)).to.equal(3) // 'l' would need 64 KiB of the 64 bytes
      expect(sys.readFiles(paths, 0, 5, 0, exp, Buffer.alloc(1 << 17), out)).to.equal(5)
      expect(at(0).slice(6, 8)).to.deep.equal([0, 5])
      expect(at(1)[7]).to.equal(-1)
      expect(at(2).slice(6, 8)).to.deep.equal([5, 3])
      expect(at(3).slice(7, 8)).to.deep.equal([5]) // followed to 'a' (the store's own files are read as open(2) does)
      expect(at(4)[0]).to.equal(os.constants.errno.ENOENT)
    })

    it('history jobs: versions streamed to the workers while records come in (more than one set) and the large ones at the end are all checked; one finding per path and version, in ledger order', async function () {
      this.timeout(120_000)
      const hdir = join(dir, 'hist-stream')
      const store = new HistoryStore(hdir, {create: true})
      const small: string[] = []
      for (let i = 0; i < 4500; i++) small.push((await store.put(Buffer.from(`version ${i}`))).digest)
      const large = await store.put(randomBytes(CHUNK_SIZE * 5))
      // damage: a chunk in the first set, one in the second, a version of one chunk gone, and the last chunk of the large version
      fs.writeFileSync(store.chunkPath(small[10]), 'version 1X')
      fs.writeFileSync(store.chunkPath(small[4400]), 'garbage')
      fs.rmSync(store.chunkPath(small[2000]))
      const lastChunk = store.chunkPath(store.manifest(large.digest).chunks[4])
      fs.writeFileSync(lastChunk, randomBytes(CHUNK_SIZE))

      const pool = new WorkerPool(2, hdir)
      try {
        const jobs = new HistoryJobs(pool)
        const recs: Array<{path: string; digest: string; size: number}> = []
        const add = (path: string, digest: string, size: number) => {
          jobs.add(digest, size, recs.length, recs.length)
          recs.push({path, digest, size})
        }

        add('/big', large.digest, large.size)
        small.forEach((d, i) => add(`/f${i}`, d, `version ${i}`.length))
        add('/copy', small[10], 10) // the same damaged version at another path: a finding there too
        add('/f10', small[10], 10) // ... and again at the same path: not twice
        const found = await jobs.finish((jseq, order) => {
          const r = recs[jseq]
          return {record: rec({op: 'write', path: r.path, digest: r.digest, size: r.size}), ref: {...ref(order), op: 'write'}}
        })
        expect(found.map(d => [d.path, d.kind, d.record?.epoch])).to.deep.equal([
          ['/big', 'history-tampered', 0], ['/f10', 'history-tampered', 11], ['/f2000', 'history-missing', 2001],
          ['/f4400', 'history-tampered', 4401], ['/copy', 'history-tampered', 4501]])
      } finally {
        await pool.close()
      }
    })

    it('the worker pool hashes files of every size around its buffer and checks stored versions as HistoryStore.check does', async function () {
      this.timeout(60_000)
      const root = join(dir, 'vol')
      fs.mkdirSync(join(root, STATE_DIR, 'history'), {recursive: true})
      fs.mkdirSync(join(root, 'sub'))
      // around the worker's 1 MiB stream and batch buffers (a group stops where the next file no longer fits)
      const sizes = [0, 1, 4095, 4096, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 * (1 << 20) + 17, (4 << 20) - 1, 4 << 20, (4 << 20) + 1]
      const want = new Map<string, string>()
      for (const s of sizes) {
        const b = randomBytes(s)
        fs.writeFileSync(join(root, 'sub', `f${s}`), b)
        want.set(`/sub/f${s}`, sha(b))
      }

      for (let i = 0; i < 100; i++) { // more than a group of 32, mixed with the large ones above
        const b = randomBytes(i * 37)
        fs.writeFileSync(join(root, 'sub', `s${i}`), b)
        want.set(`/sub/s${i}`, sha(b))
      }

      fs.symlinkSync('f1', join(root, 'sub', 'link'))
      spawnSync('mkfifo', [join(root, 'sub', 'fifo')])
      sys.lsetxattr(join(root, 'sub', 's7'), 'user.note', Buffer.from('v'), 0)
      fs.writeFileSync(join(root, STATE_DIR, 'not-scanned'), 'x')
      const store = new HistoryStore(join(root, STATE_DIR, 'history'), {create: true})
      const good = await store.put(randomBytes(2 * CHUNK_SIZE + 5))
      const bad = await store.put(randomBytes(CHUNK_SIZE + 1))
      const chunk = store.chunkPath(store.manifest(bad.digest).chunks[1])
      fs.writeFileSync(chunk, Buffer.concat([fs.readFileSync(chunk), Buffer.from('!')]))
      // a version of one chunk as older stores kept it, with a manifest, its chunk gone
      const gone = await store.put(randomBytes(100))
      fs.mkdirSync(dirname(store.manifestPath(gone.digest)), {recursive: true})
      fs.writeFileSync(store.manifestPath(gone.digest), JSON.stringify({v: 1, digest: gone.digest, size: 100, chunkSize: CHUNK_SIZE, chunks: [gone.digest]}))
      fs.rmSync(store.chunkPath(gone.digest))
      // the same length, other bytes; shorter; its chunk gone; a manifest that is not JSON
      const flipped = await store.put(randomBytes(3000))
      fs.writeFileSync(store.chunkPath(flipped.digest), randomBytes(3000))
      const short = await store.put(randomBytes(3000))
      fs.writeFileSync(store.chunkPath(short.digest), randomBytes(10))
      const noChunk = await store.put(randomBytes(5000))
      fs.rmSync(store.chunkPath(noChunk.digest))
      const garbled = await store.put(randomBytes(CHUNK_SIZE + 200))
      fs.writeFileSync(store.manifestPath(garbled.digest), '{"v":1,')
      // versions of one chunk: an older store's manifest of one, garbled (not read: the chunk decides); a chunk of no bytes;
      // a chunk put where a version of several chunks is (its reader would read it)
      const legacy = await store.put(randomBytes(700))
      fs.mkdirSync(dirname(store.manifestPath(legacy.digest)), {recursive: true})
      fs.writeFileSync(store.manifestPath(legacy.digest), '{"v":1,')
      const emptied = await store.put(randomBytes(900))
      fs.writeFileSync(store.chunkPath(emptied.digest), '')
      const planted = await store.put(randomBytes(2 * CHUNK_SIZE + 3))
      fs.mkdirSync(dirname(store.chunkPath(planted.digest)), {recursive: true})
      fs.writeFileSync(store.chunkPath(planted.digest), 'planted')
      // a manifest larger than the worker reads at once (1,000 chunks: ~67 KB), all the same good chunk
      const one = await store.put(randomBytes(CHUNK_SIZE))
      const huge = 'ab'.repeat(32)
      fs.mkdirSync(join(store.manifestDir, 'ab'), {recursive: true})
      fs.writeFileSync(store.manifestPath(huge), JSON.stringify({v: 1, digest: huge, size: 1000 * CHUNK_SIZE, chunkSize: CHUNK_SIZE, chunks: Array(1000).fill(one.digest)}))
      expect(fs.statSync(store.manifestPath(huge)).size).to.be.above(65_536)
      // intact chunks that do not add up to the version: two chunks swapped; one chunk of another version
      const swapped = await store.put(randomBytes(2 * CHUNK_SIZE))
      const ms = store.manifest(swapped.digest)
      fs.writeFileSync(store.manifestPath(swapped.digest), JSON.stringify({...ms, chunks: [ms.chunks[1], ms.chunks[0]]}))
      const borrowed = await store.put(randomBytes(2 * CHUNK_SIZE))
      fs.writeFileSync(store.manifestPath(borrowed.digest), JSON.stringify({...store.manifest(borrowed.digest), chunks: [one.digest, one.digest]}))

      const pool = new WorkerPool(2, join(root, STATE_DIR, 'history'))
      try {
        const seen = new Map<string, ActualEntry>()
        await scanTree(pool, root, (p, e) => seen.set(p, e))
        expect([...seen.keys()].sort()).to.deep.equal(['/', '/sub', '/sub/fifo', '/sub/link', ...[...want.keys()]].sort())
        for (const [p, digest] of want) {
          expect(seen.get(p)!.digest, p).to.equal(digest)
          expect(seen.get(p)!.size, p).to.equal(fs.statSync(join(root, p)).size)
        }

        expect(seen.get('/sub/link')).to.include({type: 'symlink', target: 'f1'})
        expect(seen.get('/sub/fifo')).to.include({type: 'fifo'})
        expect(seen.get('/sub/fifo')!.digest).to.equal(undefined)
        expect([...seen.get('/sub/s7')!.xattrs!]).to.deep.equal([['user.note', sha(Buffer.from('v'))]])
        expect(seen.get('/sub/s8')!.xattrs).to.equal(undefined)
        const st = fs.lstatSync(join(root, 'sub', 's9'))
        expect(seen.get('/sub/s9')).to.include({type: 'file', mode: st.mode, uid: st.uid, gid: st.gid})

        const digests = [good.digest, bad.digest, gone.digest, flipped.digest, short.digest, noChunk.digest, garbled.digest, one.digest, huge,
          EMPTY_DIGEST, 'not-a-digest', ...Array.from({length: 40}, () => 'cd'.repeat(32)), legacy.digest, emptied.digest, planted.digest,
          swapped.digest, borrowed.digest]
        // the sizes the records give (0: none); a version of one chunk is then checked by one read of its chunk
        const recorded = [good.size, bad.size, 100, 3000, 3000, 5000, garbled.size, CHUNK_SIZE, 1000 * CHUNK_SIZE, 0, 0, ...Array(40).fill(10), 700, 900,
          planted.size, swapped.size, borrowed.size]
        for (const sizes of [undefined, recorded]) {
          const got: unknown[] = []
          await pool.run('history', digests, (idx, out) => idx.forEach((i, k) => (got[i] = out[k] || undefined)), sizes)
          for (const [i, d] of digests.entries()) expect(got[i], `${d} ${sizes ? 'with' : 'without'} sizes`).to.deep.equal(await store.check(d))
          expect(got[0]).to.equal(undefined)
          expect(got[1]).to.include({kind: 'history-tampered'})
          expect(got[2]).to.include({kind: 'history-missing'})
          expect(got.slice(3, 11).map(g => (g as {kind?: string} | undefined)?.kind)).to.deep.equal(
            ['history-tampered', 'history-tampered', 'history-missing', 'history-tampered', undefined, 'history-tampered', undefined, 'history-tampered'])
          expect(got[11]).to.include({kind: 'history-missing'})
          expect(got.slice(-5, -2).map(g => (g as {kind?: string} | undefined)?.kind)).to.deep.equal([undefined, 'history-tampered', 'history-tampered'])
          for (const g of got.slice(-2)) expect(g).to.include({kind: 'history-tampered'}) // swapped, borrowed (and huge above): every chunk intact, the whole not
          expect((got.at(-1) as {detail: string}).detail).to.match(/does not reassemble/)
        }
      } finally {
        await pool.close()
      }
    })

    it('the walk waits after `ahead.sets` job sets until it is released, then scans the rest; or once `until` is rejected', async function () {
      this.timeout(60_000)
      const root = join(dir, 'gated')
      for (let d = 0; d < 3; d++) {
        fs.mkdirSync(join(root, `d${d}`), {recursive: true})
        for (let f = 0; f < 20; f++) fs.writeFileSync(join(root, `d${d}`, `f${f}`), `${d}/${f}`)
      }

      const pool = new WorkerPool(2, join(dir, 'no-history'))
      try {
        const seen = new Map<string, ActualEntry>()
        let release!: () => void
        const until = new Promise<void>(resolve => {
          release = resolve
        })
        const done = scanTree(pool, root, (p, e) => seen.set(p, e), {setSize: 5, ahead: {sets: 2, until}})
        // two sets of five entries come back ('/', d0, d1, d2, d0/f0; d0/f1..f5), and nothing more while the walk waits;
        // d1 and d2 are held back until the walk has listed them
        for (let i = 0; i < 3000 && seen.size < 8; i++) await new Promise(r => setTimeout(r, 10))
        await new Promise(r => setTimeout(r, 300))
        expect([...seen.keys()].sort()).to.deep.equal(['/', '/d0', ...[0, 1, 10, 11, 12, 13].map(f => `/d0/f${f}`)])
        // d2 can no longer be listed when the walk gets there: its entry (a directory when the worker saw it) says so
        fs.rmSync(join(root, 'd2'), {recursive: true})
        fs.writeFileSync(join(root, 'd2'), 'now a file')
        release()
        await done
        expect(seen.size).to.equal(1 + 3 + 40)
        expect(seen.get('/d1/f19')).to.include({type: 'file', size: 4})
        expect(seen.get('/d1/f19')!.digest).to.equal(sha(Buffer.from('1/19')))
        expect(seen.get('/d1')).to.include({type: 'dir'}).and.not.have.property('error')
        expect(seen.get('/d2')).to.include({type: 'dir', error: 'ENOTDIR'})

        // a caller that fails rejects `until`: the walk goes on all the same (verify releases it in its finally)
        const again = new Map<string, ActualEntry>()
        let fail!: (e: Error) => void
        const rejected = new Promise<void>((_resolve, reject) => {
          fail = reject
        })
        const second = scanTree(pool, root, (p, e) => again.set(p, e), {setSize: 5, ahead: {sets: 1, until: rejected}})
        fail(new Error('the caller failed'))
        await second
        expect([...again.keys()].sort()).to.deep.equal([...seen.keys()].sort())
      } finally {
        await pool.close()
      }
    })
  })
})
