import {expect} from 'chai'
import {createHash} from 'node:crypto'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {merkleRoot32, merkleRootJs} from '../../../src/crypto/merkle.js'
import {generateIdentity} from '../../../src/crypto/sign.js'
import {LedgerStore, batchTxids, expandOutcome} from '../../../src/ledger/embedded/store.js'
import {packBatch, unpackBatch} from '../../../src/ledger/embedded/wire.js'

const p = (s: string) => Buffer.from(s)
const sha = (b: Buffer) => createHash('sha256').update(b).digest()

describe('ledger/embedded: a batch committed with txids hashed by the caller', () => {
  let dir: string
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'pacio-commit-batch-'))))
  afterEach(() => rmSync(dir, {recursive: true, force: true}))

  it('batchTxids gives sha256 of each payload, 32 bytes each, in order', () => {
    const payloads = ['a', '', 'ccc'].map(p)
    expect(batchTxids(payloads).equals(Buffer.concat(payloads.map(sha)))).to.equal(true)
  })

  it('merkleRoot32 over a buffer of txids equals the JavaScript reference for every size', () => {
    for (const n of [0, 1, 2, 3, 5, 8, 100]) {
      const leaves = Array.from({length: n}, (_, i) => sha(p(`leaf ${i}`)))
      expect(merkleRoot32(Buffer.concat(leaves), n).toString('hex'), `n=${n}`).to.equal(merkleRootJs(leaves).toString('hex'))
    }
    expect(() => merkleRoot32(Buffer.alloc(33), 1)).to.throw(RangeError)
  })

  it('packBatch carries payloads and txids in one transferable buffer; a txid count that does not fit is refused', () => {
    const payloads = ['one', 'two', '', 'four'].map(p)
    const ids = batchTxids(payloads)
    const packed = packBatch(payloads, ids)
    expect(packed.data.byteLength).to.equal(ids.length + 10)
    const back = unpackBatch(packed)
    expect(back.ids.equals(ids)).to.equal(true)
    expect(back.payloads.map((b) => b.toString())).to.deep.equal(['one', 'two', '', 'four'])
    expect(() => packBatch(payloads, ids.subarray(32))).to.throw(RangeError)
  })

  it('expandOutcome rebuilds per-payload txids, epochs and block members from the compact answer', () => {
    const payloads = ['x', 'y', 'z', 'w'].map(p)
    const ids = batchTxids(payloads)
    const header = {epoch: 9, prevHash: '0'.repeat(64), time: 1, merkleRoot: '0'.repeat(64), producer: '0'.repeat(64), signature: '0'.repeat(128), hash: '0'.repeat(64)}
    const all = expandOutcome({block: header, checkpoint: null, prior: []}, ids, 4)
    expect(all.txids).to.deep.equal(payloads.map((b) => sha(b).toString('hex')))
    expect(all.epochs).to.deep.equal([9, 9, 9, 9])
    expect(all.included).to.deep.equal([0, 1, 2, 3])
    const some = expandOutcome({block: header, checkpoint: null, prior: [1, 3, 3, 9]}, ids, 4)
    expect(some.epochs).to.deep.equal([9, 3, 9, 9])
    expect(some.included).to.deep.equal([0, 2])
    const none = expandOutcome({block: null, checkpoint: null, prior: [0, 2, 1, 2, 2, 5, 3, 5]}, ids, 4)
    expect(none.epochs).to.deep.equal([2, 2, 5, 5])
    expect(none.included).to.deep.equal([])
  })

  it('finds duplicates in the batch, among txids waiting for the index and in the table, in one commit', () => {
    const identity = generateIdentity()
    const store = LedgerStore.openWriter({file: join(dir, 'l.db'), ledgerId: 'vol-B', identity})
    try {
      // 40 blocks: every slot of the index is written at least twice, so early txids are in the table, late ones wait
      for (let b = 0; b < 40; b++) store.commit([p(`b${b}-0`), p(`b${b}-1`)], identity, Date.now())
      const batch = [p('new-1'), p('b0-1'), p('b39-0'), p('new-1'), p('new-2'), p('b20-1')]
      const ids = batchTxids(batch)
      const stored = store.commit(batch, identity, Date.now(), ids)
      expect(stored.block?.epoch).to.equal(41)
      expect(stored.prior).to.deep.equal([1, 1, 2, 40, 3, 41, 5, 21])
      const out = expandOutcome(stored, ids, batch.length)
      expect(out.epochs).to.deep.equal([41, 1, 40, 41, 41, 21])
      expect(out.included).to.deep.equal([0, 4])
      const block = store.readBlock(41)!
      expect(block.txs.map((t) => t.payload.toString())).to.deep.equal(['new-1', 'new-2'])
      expect(block.txs.map((t) => t.txid)).to.deep.equal([out.txids[0], out.txids[4]])
      // all duplicates: no block
      const again = store.commit([p('new-2'), p('b1-0')], identity, Date.now())
      expect(again.block).to.equal(null)
      expect(again.prior).to.deep.equal([0, 41, 1, 2])
      expect(() => store.commit([p('q')], identity, Date.now(), Buffer.alloc(31))).to.throw(/txids/)
    } finally {
      store.close()
    }
  })
})
