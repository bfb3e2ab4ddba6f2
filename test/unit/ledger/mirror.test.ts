// The ledger mirror stores another producer's blocks only when they check out.
import {expect} from 'chai'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {generateIdentity} from '../../../src/crypto/sign.js'
import {sealBlock, txidOf, genesisBlock} from '../../../src/ledger/block.js'
import {signCheckpoint} from '../../../src/ledger/checkpoint.js'
import {EmbeddedLedger} from '../../../src/ledger/embedded/index.js'
import {BlockRejected, MirrorStore} from '../../../src/ledger/embedded/mirror.js'
import type {Block} from '../../../src/ledger/types.js'

const ID = 'mirror-test-volume'

describe('ledger MirrorStore', () => {
  let dir: string
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'paciofs-mirror-'))))
  afterEach(() => rmSync(dir, {recursive: true, force: true}))

  const producer = generateIdentity()
  const g = genesisBlock(ID, producer, 1000)
  const next = (prev: Block, payloads: string[], who = producer): Block =>
    sealBlock(ID, who, {epoch: prev.epoch + 1, prevHash: prev.hash, time: prev.time + 1, txs: payloads.map(p => ({txid: txidOf(Buffer.from(p)), payload: Buffer.from(p)}))})
  const cp = (b: Block, who = producer) => signCheckpoint(ID, b, who).signature

  it('mirrors checked blocks byte for byte; a read-only embedded ledger reads and validates them', async () => {
    const file = join(dir, 'ledger.db')
    const m = MirrorStore.open(file, ID, {block: g, cpSignature: cp(g)})
    const b1 = next(g, ['a', 'b'])
    const b2 = next(b1, ['c'])
    m.append(b1, cp(b1))
    m.append(b2, cp(b2))
    expect(m.head.epoch).to.equal(2)
    m.close()
    const reader = await EmbeddedLedger.openReadOnly(file, {ledgerId: ID})
    await reader.validateAll()
    const got: Block[] = []
    for await (const b of reader.read(0)) got.push(b)
    expect(got.map(b => b.hash)).to.deep.equal([g.hash, b1.hash, b2.hash])
    expect((await reader.checkpoint(2)).signature).to.equal(cp(b2))
    await reader.close()
    expect(MirrorStore.open(file, ID).head.epoch).to.equal(2) // reopens where it was
  })

  it('refuses a block by another producer, a broken link, an altered payload, a bad checkpoint signature', () => {
    const m = MirrorStore.open(join(dir, 'ledger.db'), ID, {block: g, cpSignature: cp(g)})
    const other = generateIdentity()
    const b1 = next(g, ['a'])
    const kind = (fn: () => void) => {
      try {
        fn()
        return 'stored'
      } catch (error) {
        expect(error).to.be.instanceOf(BlockRejected)
        return (error as BlockRejected).kind
      }
    }

    expect(kind(() => m.append(next(g, ['a'], other), cp(next(g, ['a'], other), other)))).to.equal('producer')
    expect(kind(() => m.append(next(b1, ['x']), cp(next(b1, ['x']))))).to.equal('link')
    const altered = {...b1, txs: [{txid: b1.txs[0].txid, payload: Buffer.from('A')}]}
    expect(kind(() => m.append(altered, cp(b1)))).to.equal('txid')
    expect(kind(() => m.append(b1, cp(next(g, ['zzz']))))).to.equal('checkpoint-signature')
    expect(m.head.epoch).to.equal(0)
    expect(kind(() => m.append(b1, cp(b1)))).to.equal('stored')
    m.close()
  })
})
