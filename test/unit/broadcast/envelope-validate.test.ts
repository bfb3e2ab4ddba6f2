import {expect} from 'chai'
import {canonical} from '../../../src/crypto/canonical.js'
import {ZERO_HASH} from '../../../src/crypto/hash.js'
import {generateIdentity} from '../../../src/crypto/sign.js'
import {decodeEnvelope, encodeEnvelope, envelopeId, signEnvelope, verifyEnvelope} from '../../../src/broadcast/envelope.js'
import {FifoChecker} from '../../../src/broadcast/validate.js'
import type {Delivery, Envelope, Violation} from '../../../src/broadcast/types.js'
import {txidOf} from '../../../src/ledger/block.js'
import type {Block} from '../../../src/ledger/types.js'

const alice = generateIdentity()
const mallory = generateIdentity()

function chain(n: number, id = alice): Envelope[] {
  const out: Envelope[] = []
  let prev = ZERO_HASH
  for (let seq = 1; seq <= n; seq++) {
    const e = signEnvelope(id, {seq, prev, payloads: [Buffer.from(`m${seq}`)]})
    out.push(e)
    prev = envelopeId(e)
  }
  return out
}

function blockOf(epoch: number, raws: Buffer[]): Block {
  return {epoch, prevHash: ZERO_HASH, time: 0, merkleRoot: ZERO_HASH, producer: ZERO_HASH, signature: '', hash: ZERO_HASH, txs: raws.map((payload) => ({txid: txidOf(payload), payload}))}
}

function run(raws: Buffer[], checker = new FifoChecker()) {
  const ds: Delivery[] = []
  const vs: Violation[] = []
  raws.forEach((r, i) => checker.checkBlock(blockOf(checker.nextEpoch + (i === 0 ? 0 : 0), [r]), (d) => ds.push(d), (v) => vs.push(v)))
  return {ds, vs, checker}
}

describe('broadcast/envelope', () => {
  it('round-trips and verifies; the wire form is canonical with sorted fields', () => {
    const [e] = chain(1)
    const bytes = encodeEnvelope(e)
    expect(bytes.toString()).to.match(/^\{"payloads":\[\{"\$b64":"bTE="\}\],"pid":"[0-9a-f]{64}","prev":"0{64}","seq":1,"sig":"[0-9a-f]{128}","v":1\}$/)
    const d = decodeEnvelope(bytes)
    expect(d.ok).to.equal(true)
    if (d.ok) {
      expect(d.envelope).to.deep.equal(e)
      expect(verifyEnvelope(d.envelope)).to.equal(true)
    }
  })

  it('the signature covers every field', () => {
    const [e] = chain(1)
    const variants: Envelope[] = [
      {...e, seq: 2},
      {...e, prev: 'ab'.repeat(32)},
      {...e, payloads: [Buffer.from('m2')]},
      {...e, payloads: [...e.payloads, Buffer.from('extra')]},
      {...e, pid: mallory.pid},
    ]
    for (const v of variants) expect(verifyEnvelope(v)).to.equal(false)
  })

  it('rejects malformed wire forms', () => {
    const [e] = chain(1)
    const good = JSON.parse(encodeEnvelope(e).toString())
    const bad: unknown[] = [
      'garbage',
      Buffer.from(encodeEnvelope(e).toString().replace('{"payloads"', '{ "payloads"')),
      canonical({...good, payloads: [], extra: 1} as never),
      canonical({...good, v: 2, payloads: e.payloads}),
      canonical({...good, seq: 0, payloads: e.payloads}),
      canonical({...good, payloads: []}),
      canonical({...good, payloads: ['text']}),
      canonical({...good, pid: 'short', payloads: e.payloads}),
      canonical({...good, sig: 'zz', payloads: e.payloads}),
    ]
    for (const b of bad) {
      const raw = typeof b === 'string' ? Buffer.from(b) : (b as Buffer)
      expect(decodeEnvelope(raw).ok, raw.toString().slice(0, 60)).to.equal(false)
    }
  })
})

describe('broadcast/validate (FifoChecker)', () => {
  const raw = (e: Envelope) => encodeEnvelope(e)

  it('delivers an intact chain in order', () => {
    const {ds, vs} = run(chain(4).map(raw))
    expect(vs).to.deep.equal([])
    expect(ds.map((d) => d.payload.toString())).to.deep.equal(['m1', 'm2', 'm3', 'm4'])
    expect(ds.map((d) => d.seq)).to.deep.equal([1, 2, 3, 4])
  })

  it('names each violation by kind and re-anchors after a gap', () => {
    const c = chain(6)
    const forged = {...c[2], payloads: [Buffer.from('evil')]} // altered after signing
    const wrongKey = signEnvelope(mallory, {seq: 3, prev: envelopeId(c[1]), payloads: [Buffer.from('x')]})
    const claimed = {...wrongKey, pid: alice.pid} // claims to be alice
    const seq = [
      raw(c[0]),
      Buffer.from('not an envelope'), // malformed
      raw(c[1]),
      raw(forged), // signature-invalid
      raw(claimed), // signature-invalid
      raw(c[3]), // seq 4 after 2: sequence-gap (3 missing), re-anchors on 4
      raw(c[2]), // seq 3 never seen: reordered
      raw(c[1]), // seq 2 again: replayed
      raw(c[4]), // links to 4: delivered
      raw(c[4]), // replayed
      raw(c[5]),
    ]
    const {ds, vs} = run(seq)
    expect(ds.map((d) => d.payload.toString())).to.deep.equal(['m1', 'm2', 'm5', 'm6'])
    expect(vs.map((v) => v.kind)).to.deep.equal(['malformed', 'signature-invalid', 'signature-invalid', 'sequence-gap', 'reordered', 'replayed', 'replayed'])
    expect(vs[3]).to.include({pid: alice.pid, seq: 4})
    expect(vs[3].detail).to.contain('expected seq 3')
    for (const v of vs) expect(v.txid).to.match(/^[0-9a-f]{64}$/)
  })

  it('reports prev-mismatch for a well-signed envelope that does not link', () => {
    const c = chain(2)
    const fork = signEnvelope(alice, {seq: 2, prev: 'cd'.repeat(32), payloads: [Buffer.from('fork')]})
    const {ds, vs} = run([raw(c[0]), raw(fork)])
    expect(ds.map((d) => d.payload.toString())).to.deep.equal(['m1'])
    expect(vs.map((v) => v.kind)).to.deep.equal(['prev-mismatch'])
  })

  it('keeps senders independent', () => {
    const a = chain(2, alice)
    const m = chain(2, mallory)
    const {ds, vs} = run([raw(a[0]), raw(m[0]), raw(m[1]), raw(a[1])])
    expect(vs).to.deep.equal([])
    expect(ds.map((d) => `${d.pid === alice.pid ? 'a' : 'm'}${d.payload}`)).to.deep.equal(['am1', 'mm1', 'mm2', 'am2'])
  })

  it('snapshot/restore resumes with the same verdicts', () => {
    const c = chain(5).map(raw)
    const whole = run(c)
    const first = run(c.slice(0, 2))
    const state = JSON.parse(JSON.stringify(first.checker.snapshot()))
    const rest = run(c.slice(2), new FifoChecker(state))
    expect([...first.ds, ...rest.ds].map((d) => d.payload.toString())).to.deep.equal(whole.ds.map((d) => d.payload.toString()))
    expect(rest.vs).to.deep.equal([])
    // without the state the tail looks like a gap
    expect(run(c.slice(2)).vs.map((v) => v.kind)).to.deep.equal(['sequence-gap'])
  })

  it('refuses to be fed a block twice', () => {
    const checker = new FifoChecker()
    checker.checkBlock(blockOf(0, []), () => {}, () => {})
    checker.checkBlock(blockOf(3, []), () => {}, () => {})
    expect(() => checker.checkBlock(blockOf(3, []), () => {}, () => {})).to.throw(/fed again/)
  })
})
