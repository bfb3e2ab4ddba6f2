import {expect} from 'chai'
import {sha256Hex} from '../../../src/crypto/hash.js'
import {verifyBlock} from '../../../src/ledger/block.js'
import {checkConsistency, verifyCheckpoint} from '../../../src/ledger/checkpoint.js'
import type {Block} from '../../../src/ledger/types.js'
import {MemoryLedger} from '../../fakes/memory-ledger.js'

async function all(l: MemoryLedger): Promise<Block[]> {
  const out: Block[] = []
  for await (const b of l.read(0)) out.push(b)
  return out
}

describe('test/fakes/memory-ledger', () => {
  it('has the embedded semantics: signed linked blocks, group commit, idempotency, follow', async () => {
    const l = new MemoryLedger({ledgerId: 'm'})
    const seen: number[] = []
    l.follow(0, (b) => seen.push(b.epoch))
    const [a, b] = await Promise.all([l.append([Buffer.from('a')]), l.append([Buffer.from('b'), Buffer.from('a')])])
    expect(a[0]).to.deep.equal({txid: sha256Hex('a'), epoch: 1})
    expect(b[1]).to.deep.equal(a[0])
    expect(l.headEpoch).to.equal(1) // one block for appends in the same tick
    await l.append([Buffer.from('c')])
    const blocks = await all(l)
    blocks.forEach((blk, i) => expect(verifyBlock('m', blk, i === 0 ? null : blocks[i - 1])).to.equal(null))
    await new Promise((r) => setImmediate(r))
    expect(seen).to.deep.equal([0, 1, 2])
    const cp = await l.head()
    expect(verifyCheckpoint(cp, l.identity.pid)).to.equal(true)
    expect(await checkConsistency(cp, blocks)).to.include({ok: true})
  })

  it('fault hooks rewrite history behind a re-sealed, still valid chain', async () => {
    const l = new MemoryLedger({ledgerId: 'm'})
    for (const x of ['a', 'b', 'c']) await l.append([Buffer.from(x)])
    const cp = await l.head()
    l.drop(sha256Hex('b'))
    const blocks = await all(l)
    blocks.forEach((blk, i) => expect(verifyBlock('m', blk, i === 0 ? null : blocks[i - 1])).to.equal(null))
    expect(l.allTxs().map((t) => t.payload.toString())).to.deep.equal(['a', 'c'])
    // ...but a checkpoint kept from before exposes the rewrite
    expect(await checkConsistency(cp, blocks)).to.include({ok: false, kind: 'checkpoint-mismatch'})
    l.failNext(1)
    const err = await l.append([Buffer.from('d')]).catch((e: Error) => e)
    expect(err).to.be.instanceOf(Error)
    expect(l.duplicate(sha256Hex('a'))).to.equal(l.headEpoch)
    expect(l.allTxs().filter((t) => t.payload.toString() === 'a')).to.have.length(2)
  })
})
