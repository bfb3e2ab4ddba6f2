import {expect} from 'chai'
import fc from 'fast-check'
import {canonical, canonicalString, decodeCanonical, parseCommitted, parseCommittedText, type Canonical} from '../../../src/crypto/canonical.js'
import {CryptoError} from '../../../src/crypto/errors.js'

// Golden vectors: fixed input -> exact canonical text (its UTF-8 bytes are the encoding).
const GOLDEN: Array<[string, Canonical, string]> = [
  ['null', null, 'null'],
  ['true', true, 'true'],
  ['false', false, 'false'],
  ['zero', 0, '0'],
  ['negative', -42, '-42'],
  ['max safe', Number.MAX_SAFE_INTEGER, '9007199254740991'],
  ['min safe', Number.MIN_SAFE_INTEGER, '-9007199254740991'],
  ['empty string', '', '""'],
  ['escapes', 'a"b\\c\n\t\r\b\f\u0001\u001f', '"a\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001f"'],
  ['slash and DEL literal', '/\u007f', '"/\u007f"'],
  ['empty array', [], '[]'],
  ['empty object', {}, '{}'],
  ['sorted keys', {b: 1, a: 2, C: 3, aa: 4}, '{"C":3,"a":2,"aa":4,"b":1}'],
  ['undefined omitted', {a: undefined, b: null}, '{"b":null}'],
  ['nested', {z: [1, {y: 'x', a: []}], a: {}}, '{"a":{},"z":[1,{"a":[],"y":"x"}]}'],
  ['buffer', Buffer.from([0, 1, 2, 0xfe, 0xff]), '{"$b64":"AAEC/v8="}'],
  ['empty buffer', Buffer.alloc(0), '{"$b64":""}'],
  ['uint8array', new Uint8Array([104, 105]), '{"$b64":"aGk="}'],
  ['bigint', 123456789012345678901234567890n, '{"$big":"123456789012345678901234567890"}'],
  ['negative bigint', -5n, '{"$big":"-5"}'],
  ['record-like', {op: 'write', path: '/a/b.txt', size: 4096, digest: Buffer.from('abcd', 'hex')}, '{"digest":{"$b64":"q80="},"op":"write","path":"/a/b.txt","size":4096}'],
]

describe('crypto/canonical', () => {
  for (const [name, input, text] of GOLDEN) {
    it(`golden: ${name}`, () => {
      expect(canonicalString(input)).to.equal(text)
      expect(canonical(input).equals(Buffer.from(text, 'utf8'))).to.equal(true)
    })
  }

  it('golden bytes for non-ASCII (UTF-8, key order by UTF-16 code units)', () => {
    // U+00E9 é, U+20AC €, U+1F600 😀 (a surrogate pair in UTF-16); keys: "Z" < "é" < "😀" < "ｆ" (U+FF46)
    const v = {'ｆ': 1, '😀': 'é€', 'é': 2, Z: 3}
    expect(canonical(v).toString('hex')).to.equal(
      '7b' + // {
        '225a223a33' + // "Z":3
        '2c22c3a9223a32' + // ,"é":2
        '2c22f09f9880223a22c3a9e282ac22' + // ,"😀":"é€"
        '2c22efbd86223a31' + // ,"ｆ":1
        '7d', // }
    )
  })

  it('key order for a rich object is independent of insertion order', () => {
    const a = {x: 1, y: [Buffer.from('hi'), 2n], z: {q: true, p: null}}
    const b = {z: {p: null, q: true}, y: [Buffer.from('hi'), 2n], x: 1}
    expect(canonicalString(a)).to.equal(canonicalString(b))
  })

  const REJECTED: Array<[string, unknown]> = [
    ['float', 1.5],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['-0', -0],
    ['unsafe integer', 2 ** 53],
    ['undefined at top', undefined],
    ['undefined in array', [1, undefined]],
    ['array hole', [1, , 3]], // eslint-disable-line no-sparse-arrays
    ['function', () => 1],
    ['symbol', Symbol('x')],
    ['Date', new Date(0)],
    ['Map', new Map()],
    ['class instance', new (class Foo {})()],
    ['$ key', {$b64: 'AA=='}],
    ['__proto__ key', JSON.parse('{"__proto__": 1}')],
    ['lone high surrogate', 'a\uD800b'],
    ['lone low surrogate', '\uDC00'],
    ['too deep', JSON.parse('['.repeat(100) + ']'.repeat(100))],
  ]
  for (const [name, v] of REJECTED) {
    it(`rejects ${name}`, () => {
      expect(() => canonical(v as Canonical)).to.throw(CryptoError).with.property('code', 'ENONCANONICAL')
    })
  }

  it('decode round-trips golden vectors', () => {
    for (const [, , text] of GOLDEN) {
      const back = decodeCanonical(Buffer.from(text))
      expect(canonicalString(back)).to.equal(text)
    }
    expect(decodeCanonical(Buffer.from('{"$b64":"AAEC/v8="}'))).to.deep.equal(Buffer.from([0, 1, 2, 0xfe, 0xff]))
    expect(decodeCanonical(Buffer.from('{"$big":"-5"}'))).to.equal(-5n)
  })

  const NOT_CANONICAL = [
    '{"b":1,"a":2}', // unsorted
    '{"a":1,"a":1}', // duplicate key
    '{ "a":1}', // whitespace
    '1.0',
    '1e3',
    '-0',
    '"\\u0041"', // escape where a literal is canonical
    '{"$b64":"AAE"}', // missing padding
    '{"$b64":"AAF="}', // non-zero pad bits
    '{"$big":"007"}',
    '{"$big":7}',
    '{"$b64":"AA==","x":1}', // $ key next to others
    '9007199254740993', // unsafe integer
    '[1,]',
    'nul',
    '',
  ]
  for (const text of NOT_CANONICAL) {
    it(`decode rejects ${JSON.stringify(text)}`, () => {
      expect(() => decodeCanonical(Buffer.from(text))).to.throw(CryptoError).with.property('code', 'ENONCANONICAL')
    })
  }

  it('decode rejects invalid UTF-8', () => {
    expect(() => decodeCanonical(Buffer.from([0x22, 0xff, 0x22]))).to.throw(CryptoError)
  })

  it('property: decode(encode(v)) re-encodes to the same bytes', () => {
    const value = fc.letrec<{v: Canonical}>((tie) => ({
      v: fc.oneof(
        {depthSize: 'small'},
        fc.constant(null),
        fc.boolean(),
        fc.maxSafeInteger().filter((n) => !Object.is(n, -0)),
        fc.bigInt(),
        fc.string({unit: 'grapheme'}),
        fc.uint8Array().map((u) => Buffer.from(u)),
        fc.array(tie('v')),
        fc.dictionary(
          fc.string().filter((k) => !k.startsWith('$') && k !== '__proto__'),
          tie('v'),
        ),
      ),
    })).v
    fc.assert(
      fc.property(value, (v) => {
        const bytes = canonical(v)
        expect(canonical(decodeCanonical(bytes)).equals(bytes)).to.equal(true)
      }),
      {numRuns: 300},
    )
  })
})

describe('canonical: the fast paths (no path strings) say where, as the slow ones do', () => {
  it('an encoding error names the path of the value', () => {
    expect(() => canonical({a: [1, {b: 1.5}]})).to.throw(CryptoError, '$.a[1].b: 1.5 is not a safe integer')
    expect(() => canonical({a: [{$x: 1}]})).to.throw(CryptoError, '$.a[0]: key "$x" starts with the reserved $')
    // a key that is not well-formed but whose value is undefined is left out, as before
    expect(canonicalString({'\uD800': undefined, a: 1} as unknown as Canonical)).to.equal('{"a":1}')
  })

  it('a decoding error names the path; a value decoded twice is the same (decoding revises the parsed value in place)', () => {
    expect(() => decodeCanonical(Buffer.from('{"a":[{"$b64":"A"}]}'))).to.throw(CryptoError, '$.a[0]: bad $b64 value')
    expect(() => parseCommitted(Buffer.from('{"a":{"$big":"x"}}'))).to.throw(CryptoError, '$.a: bad $big value')
    const deep = '['.repeat(64) + '1' + ']'.repeat(64)
    expect(canonicalString(decodeCanonical(Buffer.from(deep)))).to.equal(deep)
    expect(() => decodeCanonical(Buffer.from('[' + deep + ']'))).to.throw(CryptoError, 'nested deeper than 64')
    const text = '{"a":[{"$b64":"AAE="},{"$big":"-7"},{"c":null}],"b":"x"}'
    expect(parseCommitted(Buffer.from(text))).to.deep.equal({a: [Buffer.from([0, 1]), -7n, {c: null}], b: 'x'})
    expect(canonicalString(decodeCanonical(Buffer.from(text)))).to.equal(text)
  })

  it('parseCommittedText gives what parseCommitted gives, value or error, with or without its walk', () => {
    const deep = '['.repeat(64) + '1' + ']'.repeat(64)
    const texts = [
      '{"at":1,"op":"write","path":"/a/b","who":{"member":"m","uid":0}}',
      '{"a":[{"$b64":"AAE="},{"$big":"-7"},{"c":null}],"b":"x"}',
      '{"a":{"$big":"x"}}', '{"$x":1}', '{"__proto__":1}', '{"\\u005f_proto__":1}', '{"a":"\\u0024b64"}', '{"\\u0024b64":"AA=="}',
      deep, '[' + deep + ']', '{"a":[' + '{"b":'.repeat(70) + '1' + '}'.repeat(70) + ']}', 'not json', '', '"$"', '{"p":"$HOME"}',
    ]
    const outcome = (f: () => unknown) => {
      try {
        return {value: f()}
      } catch (error) {
        return {error: `${(error as Error).name}: ${(error as Error).message}`}
      }
    }

    for (const t of texts) expect(outcome(() => parseCommittedText(t)), t).to.deep.equal(outcome(() => parseCommitted(Buffer.from(t))))
  })
})
