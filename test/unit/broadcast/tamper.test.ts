import {expect} from 'chai'
import {ZERO_HASH} from '../../../src/crypto/hash.js'
import {generateIdentity} from '../../../src/crypto/sign.js'
import {decodeEnvelope, encodeEnvelope, envelopeId, signEnvelope} from '../../../src/broadcast/envelope.js'
import type {Broadcast} from '../../../src/broadcast/broadcast.js'
import {verifyBlock} from '../../../src/ledger/block.js'
import type {Block} from '../../../src/ledger/types.js'
import {MemoryLedger} from '../../fakes/memory-ledger.js'
import {byPid, collect, openSenders, render, tempDir} from './helpers.js'

/**
 * A hostile ledger operator rewrites history (and re-seals every block, so the
 * ledger itself still verifies). Each kind of tampering must be detected,
 * named, and kept out of the deliveries; the other senders are unaffected.
 */
describe('broadcast: tamper evidence', function () {
  this.timeout(60_000)
  let t: ReturnType<typeof tempDir>
  let ledger: MemoryLedger
  let senders: Broadcast[]
  let victim: string
  /** the victim's envelopes as committed: seq -> payload texts */
  let bySeq: Map<number, string[]>

  beforeEach(async () => {
    t = tempDir('pacio-tamper-')
    ledger = new MemoryLedger()
    senders = await openSenders(ledger, t.dir, 3, {flushMs: 0, maxBatch: 2})
    // interleave: every sender broadcasts 5 envelopes' worth
    for (let k = 0; k < 5; k++) {
      await Promise.all(senders.map((s, i) => Promise.all([s.broadcast(Buffer.from(`${i}-${k}a`)), s.broadcast(Buffer.from(`${i}-${k}b`))])))
    }
    victim = senders[1].pid
    const clean = await collect(ledger)
    expect(clean.violations).to.deep.equal([])
    bySeq = new Map()
    for (const d of clean.deliveries) if (d.pid === victim) bySeq.set(d.seq, [...(bySeq.get(d.seq) ?? []), d.payload.toString()])
    expect(bySeq.size).to.be.at.least(5)
  })
  afterEach(async () => {
    await Promise.all(senders.map((s) => s.close()))
    t.cleanup()
  })

  /** The victim's envelope with this seq, as stored on the ledger. */
  function txOf(seq: number) {
    const tx = ledger.allTxs().find((x) => {
      const d = decodeEnvelope(x.payload)
      return d.ok && d.envelope.pid === victim && d.envelope.seq === seq
    })
    if (!tx) throw new Error(`no envelope seq ${seq}`)
    return tx
  }

  async function check(expectKinds: string[], victimGets: string[]) {
    // the ledger itself still looks sound: the attacker re-sealed it
    const blocks: Block[] = []
    for await (const b of ledger.read(0)) blocks.push(b)
    blocks.forEach((b, i) => expect(verifyBlock(ledger.ledgerId, b, i === 0 ? null : blocks[i - 1])).to.equal(null))
    const a = await collect(ledger)
    const b = await collect(ledger)
    expect(render(b.deliveries)).to.deep.equal(render(a.deliveries)) // agreement even under attack
    expect(a.violations.map((v) => v.kind)).to.deep.equal(expectKinds)
    for (const v of a.violations) {
      if (v.kind !== 'malformed') expect(v.pid).to.equal(victim)
      expect(v.txid).to.match(/^[0-9a-f]{64}$/)
      expect(v.epoch).to.be.a('number')
    }
    const got = byPid(a.deliveries)
    expect(got.get(victim)).to.deep.equal(victimGets)
    // the other senders are delivered in full
    for (const i of [0, 2]) expect(got.get(senders[i].pid)).to.deep.equal([0, 1, 2, 3, 4].flatMap((k) => [`${i}-${k}a`, `${i}-${k}b`]))
    return a
  }

  /** the victim's payloads, without those of the envelopes with these seqs */
  const all = (exceptSeqs: number[] = []) => [...bySeq].filter(([seq]) => !exceptSeqs.includes(seq)).flatMap(([, texts]) => texts)

  it('altered envelope: signature-invalid, then the gap it leaves', async () => {
    const tx = txOf(3)
    ledger.alter(tx.txid, (raw) => {
      const d = decodeEnvelope(raw)
      if (!d.ok) throw new Error('setup')
      return encodeEnvelope({...d.envelope, payloads: [...d.envelope.payloads, Buffer.from('forged!')]})
    })
    // seq 3 fails its signature; seq 4 then reports the gap and is withheld too
    const a = await check(['signature-invalid', 'sequence-gap'], all([3, 4]))
    expect(a.violations[0].seq).to.equal(3)
    expect(a.violations[1].seq).to.equal(4)
  })

  it('garbled bytes: malformed', async () => {
    const tx = txOf(2)
    ledger.alter(tx.txid, (raw) => Buffer.concat([raw.subarray(0, 20), Buffer.from([0xff]), raw.subarray(21)]))
    await check(['malformed', 'sequence-gap'], all([2, 3]))
  })

  it('dropped envelope: sequence-gap', async () => {
    ledger.drop(txOf(2).txid)
    const a = await check(['sequence-gap'], all([2, 3]))
    expect(a.violations[0]).to.include({seq: 3})
    expect(a.violations[0].detail).to.contain('expected seq 2')
  })

  it('reordered envelopes: sequence-gap then reordered', async () => {
    ledger.swap(txOf(2).txid, txOf(3).txid)
    await check(['sequence-gap', 'reordered'], all([2, 3]))
  })

  it('replayed envelope: replayed', async () => {
    ledger.duplicate(txOf(2).txid)
    const a = await check(['replayed'], all())
    expect(a.violations[0]).to.include({seq: 2, epoch: ledger.headEpoch})
  })

  it('forged envelope under the victim\'s pid: signature-invalid', async () => {
    const mallory = generateIdentity()
    const last = decodeEnvelope(txOf(Math.max(...bySeq.keys())).payload)
    if (!last.ok) throw new Error('setup')
    const forged = signEnvelope(mallory, {seq: last.envelope.seq + 1, prev: envelopeId(last.envelope), payloads: [Buffer.from('pay mallory')]})
    ledger.inject(encodeEnvelope({...forged, pid: victim}))
    // ...and mallory's own, well-signed, envelope is simply another sender
    ledger.inject(encodeEnvelope(signEnvelope(mallory, {seq: 1, prev: ZERO_HASH, payloads: [Buffer.from('hello')]})))
    const a = await check(['signature-invalid'], all())
    expect(byPid(a.deliveries).get(mallory.pid)).to.deep.equal(['hello'])
  })

  it('injected garbage: malformed', async () => {
    ledger.inject(Buffer.from('{"not":"an envelope"}'))
    await check(['malformed'], all())
  })
})
