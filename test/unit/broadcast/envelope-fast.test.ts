import {expect} from 'chai'
import {randomBytes} from 'node:crypto'
import {ZERO_HASH} from '../../../src/crypto/hash.js'
import {generateIdentity} from '../../../src/crypto/sign.js'
import {decodeEnvelope, decodeEnvelopeStrict, decodeEnvelopeWithBody, encodeEnvelope, envelopeBody, signEnvelope} from '../../../src/broadcast/envelope.js'
import {decodeEnvelopeFast} from '../../../src/broadcast/envelope-fast.js'

const alice = generateIdentity()

const strict = decodeEnvelopeStrict

describe('broadcast/envelope-fast', () => {
  it('decodes honest envelopes exactly as the strict decoder, with the signed body', () => {
    for (const sizes of [[32], [0], [1], [2], [3], [31, 32, 33], Array.from({length: 300}, () => 32)]) {
      const payloads = sizes.map(n => randomBytes(n))
      for (const seq of [1, 9, 10, 123_456_789, Number.MAX_SAFE_INTEGER]) {
        const e = signEnvelope(alice, {seq, prev: seq === 1 ? ZERO_HASH : 'ab'.repeat(32), payloads})
        const bytes = encodeEnvelope(e)
        const fast = decodeEnvelopeFast(bytes)
        expect(fast, `sizes ${sizes.slice(0, 3)}, seq ${seq}`).to.not.equal(undefined)
        expect(fast!.envelope).to.deep.equal(e)
        const slow = strict(bytes)
        expect(slow.ok && slow.envelope).to.deep.equal(e)
        expect(fast!.body.equals(envelopeBody(e))).to.equal(true)
        const d = decodeEnvelopeWithBody(bytes)
        expect(d.ok && d.body.equals(envelopeBody(e))).to.equal(true)
      }
    }
  })

  it('refuses every single-byte change that the strict decoder refuses, and agrees on the rest', () => {
    const e = signEnvelope(alice, {seq: 12, prev: 'cd'.repeat(32), payloads: [randomBytes(32), randomBytes(5), randomBytes(4)]})
    const bytes = encodeEnvelope(e)
    const alphabet = Buffer.from('"{}[],:0123456789abcdefABCDEF=+/ $\\xyz-.')
    let refusedByBoth = 0
    for (let i = 0; i < bytes.length; i++) {
      for (const c of alphabet) {
        if (c === bytes[i]) continue
        const m = Buffer.from(bytes)
        m[i] = c
        const fast = decodeEnvelopeFast(m)
        const slow = strict(m)
        if (fast) {
          expect(slow.ok, `byte ${i} -> ${String.fromCharCode(c)}: ${m}`).to.equal(true)
          if (slow.ok) expect(fast.envelope).to.deep.equal(slow.envelope)
          expect(fast.body.equals(envelopeBody(fast.envelope))).to.equal(true)
        } else if (!slow.ok) refusedByBoth++
      }
    }

    expect(refusedByBoth).to.be.greaterThan(1000)
  })

  it('leaves non-canonical forms to the strict decoder, which names the problem', () => {
    const e = signEnvelope(alice, {seq: 3, prev: ZERO_HASH, payloads: [Buffer.from([0xff])]})
    const text = encodeEnvelope(e).toString()
    const variants = [
      text.replace('"/w=="', '"/x=="'), // unused base64 bits set
      text.replace('"seq":3', '"seq":03'),
      text.replace('"seq":3', '"seq":3.0'),
      text.replace('"seq":3', '"seq": 3'),
      text.replace('"payloads":[', '"payloads":[ '),
      text.replace(/"pid":"([0-9a-f]{64})"/, (_, h: string) => `"pid":"${h.toUpperCase()}"`),
      text + ' ',
      text.replace('{"payloads":[{"$b64":"/w=="}]', '{"payloads":[]'),
    ]
    for (const v of variants) {
      expect(v, 'variant differs').to.not.equal(text)
      expect(decodeEnvelopeFast(Buffer.from(v)), v).to.equal(undefined)
      const d = decodeEnvelope(Buffer.from(v))
      expect(d.ok, v).to.equal(false)
    }
  })
})
