import {expect} from 'chai'
import {randomBytes} from 'node:crypto'
import {TxBloom} from '../../../src/ledger/embedded/txgens.js'

describe('ledger/embedded: TxBloom', () => {
  it('never rules out a txid it holds, and rules out about 98 % of the others at capacity', () => {
    const capacity = 1 << 14
    const bloom = TxBloom.forCapacity(capacity)
    expect(bloom.bits.length).to.equal(capacity) // 8 bits per entry
    const held = randomBytes(capacity * 32)
    for (let i = 0; i < capacity; i++) bloom.add(held, i * 32)
    for (let i = 0; i < capacity; i++) expect(bloom.mayHave(held, i * 32)).to.equal(true)
    const others = randomBytes(100_000 * 32)
    let maybe = 0
    for (let i = 0; i < 100_000; i++) if (bloom.mayHave(others, i * 32)) maybe++
    expect(maybe / 100_000).to.be.lessThan(0.035) // 6 probes, 8 bits per entry: about 2.2 %
  })

  it('refuses a filter whose size is not a power of two (a damaged txseal row)', () => {
    expect(() => new TxBloom(Buffer.alloc(1000))).to.throw(/not a power of two/)
    expect(() => new TxBloom(Buffer.alloc(0))).to.throw(/not a power of two/)
  })
})
