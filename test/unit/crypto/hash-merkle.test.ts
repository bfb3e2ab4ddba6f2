import {expect} from 'chai'
import {createHash, randomBytes} from 'node:crypto'
import {isHash, sha256Hex, ZERO_HASH} from '../../../src/crypto/hash.js'
import {merkleRoot, merkleRootHex, merkleRootJs} from '../../../src/crypto/merkle.js'
import {native, sha256All} from '../../../src/crypto/native.js'

// Written independently of src/crypto/merkle.ts: the recursive definition of
// RFC 6962 §2.1, spelled out with plain createHash calls.
function H(...parts: Buffer[]): Buffer {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return h.digest()
}
const leaf = (d: Buffer) => H(Buffer.from([0x00]), d)
const node = (l: Buffer, r: Buffer) => H(Buffer.from([0x01]), l, r)
function mth(d: Buffer[]): Buffer {
  if (d.length === 0) return H()
  if (d.length === 1) return leaf(d[0])
  let k = 1
  while (k * 2 < d.length) k *= 2
  return node(mth(d.slice(0, k)), mth(d.slice(k)))
}

const D = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map((h) => Buffer.from(h, 'hex'))

describe('crypto/hash', () => {
  it('sha256 golden vectors', () => {
    expect(sha256Hex('')).to.equal('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
    expect(sha256Hex('abc')).to.equal('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
    expect(sha256Hex('a', 'bc')).to.equal(sha256Hex('abc'))
    expect(ZERO_HASH).to.have.length(64)
    expect(isHash(ZERO_HASH)).to.equal(true)
    expect(isHash('A'.repeat(64))).to.equal(false)
  })
})

describe('crypto/merkle', () => {
  it('empty tree is SHA-256 of nothing', () => {
    expect(merkleRoot([]).toString('hex')).to.equal('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
  })

  it('one leaf is H(0x00 || d)', () => {
    expect(merkleRoot([D[0]]).equals(leaf(D[0]))).to.equal(true)
    expect(merkleRoot([D[0]]).toString('hex')).to.equal('6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d')
  })

  it('two leaves', () => {
    expect(merkleRoot(D.slice(0, 2)).equals(node(leaf(D[0]), leaf(D[1])))).to.equal(true)
  })

  it('three leaves: ((0,1),2)', () => {
    const expected = node(node(leaf(D[0]), leaf(D[1])), leaf(D[2]))
    expect(merkleRoot(D.slice(0, 3)).equals(expected)).to.equal(true)
    expect(expected.toString('hex')).to.equal('aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77')
  })

  it('five leaves: (((0,1),(2,3)),4)', () => {
    const expected = node(node(node(leaf(D[0]), leaf(D[1])), node(leaf(D[2]), leaf(D[3]))), leaf(D[4]))
    expect(merkleRoot(D.slice(0, 5)).equals(expected)).to.equal(true)
    expect(expected.toString('hex')).to.equal('4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4')
  })

  it('eight leaves', () => {
    expect(merkleRoot(D).toString('hex')).to.equal('5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328')
  })

  it('agrees with the recursive definition for 0..70 leaves', () => {
    const leaves = Array.from({length: 70}, (_, i) => H(Buffer.from([i])))
    for (let n = 0; n <= 70; n++) {
      expect(merkleRoot(leaves.slice(0, n)).equals(mth(leaves.slice(0, n))), `n=${n}`).to.equal(true)
    }
  })

  it('the native tree (32-byte leaves) and the JavaScript one agree with the definition, 1..300 leaves', () => {
    const leaves = Array.from({length: 300}, (_, i) => H(Buffer.from([i & 255, i >> 8])))
    for (let n = 1; n <= 300; n++) {
      const want = mth(leaves.slice(0, n))
      expect(native.merkleRoot32(Buffer.concat(leaves.slice(0, n))).equals(want), `native n=${n}`).to.equal(true)
      expect(merkleRootJs(leaves.slice(0, n)).equals(want), `js n=${n}`).to.equal(true)
    }
    expect(() => native.merkleRoot32(Buffer.alloc(33))).to.throw(TypeError)
    expect(() => native.merkleRoot32(Buffer.alloc(0))).to.throw(TypeError)
  })

  it('leaves of other lengths (mixed with 32-byte ones) take the JavaScript path and agree', () => {
    const mixed = [H(Buffer.from('a')), Buffer.from('short'), H(Buffer.from('b'))]
    expect(merkleRoot(mixed).equals(mth(mixed))).to.equal(true)
  })

  it('sha256All hashes each part (Buffers, Uint8Arrays, empty ones) into 32 bytes each', () => {
    const parts = [Buffer.from('abc'), new Uint8Array(0), new Uint8Array([1, 2, 3]), randomBytes(100_000).subarray(5, 90_000)] // a view into a larger buffer
    const all = sha256All(parts)
    expect(all.length).to.equal(parts.length * 32)
    parts.forEach((p, i) => expect(all.subarray(i * 32, i * 32 + 32).equals(H(Buffer.from(p))), `part ${i}`).to.equal(true))
    expect(sha256All([]).length).to.equal(0)
    expect(() => native.sha256Each(['x' as unknown as Uint8Array], Buffer.alloc(32))).to.throw(TypeError)
    expect(() => native.sha256Each([Buffer.from('x')], Buffer.alloc(31))).to.throw(TypeError)
  })

  it('a leaf cannot pose as a node (domain separation)', () => {
    const two = merkleRoot([D[1], D[2]])
    const forged = Buffer.concat([leaf(D[1]), leaf(D[2])])
    expect(merkleRoot([forged]).equals(two)).to.equal(false)
  })

  it('hex helper hashes raw bytes of each leaf', () => {
    const a = 'aa'.repeat(32)
    const b = 'bb'.repeat(32)
    expect(merkleRootHex([a, b])).to.equal(node(leaf(Buffer.from(a, 'hex')), leaf(Buffer.from(b, 'hex'))).toString('hex'))
  })
})
