import {expect} from 'chai'
import {createPrivateKey, generateKeyPairSync} from 'node:crypto'
import {chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {CryptoError} from '../../../src/crypto/errors.js'
import {generateIdentity, loadIdentity, pidOf, publicKeyFromPid, saveIdentity, sign, verify} from '../../../src/crypto/sign.js'

// RFC 8032 §7.1 TEST 1 (empty message), used here as fixed key material.
const RFC8032_SECRET = '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60'
const RFC8032_PUBLIC = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a'
const RFC8032_SIG =
  'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b'

function keyFromSeed(seedHex: string) {
  // PKCS#8 wrapping of a raw Ed25519 seed (RFC 8410).
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from(seedHex, 'hex')])
  return createPrivateKey({key: der, format: 'der', type: 'pkcs8'})
}

describe('crypto/sign', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pacio-sign-'))
  })
  afterEach(() => rmSync(dir, {recursive: true, force: true}))

  it('pid is the hex raw public key; signature matches RFC 8032 test 1', () => {
    const key = keyFromSeed(RFC8032_SECRET)
    expect(pidOf(key)).to.equal(RFC8032_PUBLIC)
    expect(sign(key, Buffer.alloc(0)).toString('hex')).to.equal(RFC8032_SIG)
    expect(verify(RFC8032_PUBLIC, Buffer.alloc(0), RFC8032_SIG)).to.equal(true)
  })

  it('sign/verify round trip and rejections', () => {
    const id = generateIdentity()
    expect(id.pid).to.match(/^[0-9a-f]{64}$/)
    const msg = Buffer.from('hello')
    const sig = sign(id, msg)
    expect(sig).to.have.length(64)
    expect(verify(id.pid, msg, sig)).to.equal(true)
    expect(verify(id.publicKey, msg, sig.toString('hex'))).to.equal(true)
    expect(verify(id.pid, Buffer.from('hellO'), sig)).to.equal(false)
    const bad = Buffer.from(sig)
    bad[5] ^= 1
    expect(verify(id.pid, msg, bad)).to.equal(false)
    expect(verify(generateIdentity().pid, msg, sig)).to.equal(false)
    // malformed inputs are invalid, never a throw
    expect(verify('zz', msg, sig)).to.equal(false)
    expect(verify(id.pid, msg, 'abc')).to.equal(false)
    expect(verify(id.pid, msg, sig.subarray(0, 63))).to.equal(false)
    expect(() => publicKeyFromPid('nope')).to.throw(CryptoError)
  })

  it('save writes PEM with mode 0600 and load returns the same identity', () => {
    const id = generateIdentity()
    const file = join(dir, 'id.pem')
    saveIdentity(file, id)
    expect(statSync(file).mode & 0o777).to.equal(0o600)
    expect(readFileSync(file, 'utf8')).to.match(/^-----BEGIN PRIVATE KEY-----/)
    const back = loadIdentity(file)
    expect(back.pid).to.equal(id.pid)
    expect(verify(id.pid, Buffer.from('x'), sign(back, Buffer.from('x')))).to.equal(true)
  })

  it('save refuses to overwrite; load refuses open modes, garbage and non-Ed25519 keys', () => {
    const id = generateIdentity()
    const file = join(dir, 'id.pem')
    saveIdentity(file, id)
    expect(() => saveIdentity(file, generateIdentity())).to.throw(CryptoError).with.property('code', 'EKEYFILE')
    chmodSync(file, 0o644)
    expect(() => loadIdentity(file)).to.throw(CryptoError, /chmod 600/)
    const garbage = join(dir, 'garbage.pem')
    writeFileSync(garbage, 'not a key', {mode: 0o600})
    expect(() => loadIdentity(garbage)).to.throw(CryptoError, /not a PEM/)
    const rsa = join(dir, 'rsa.pem')
    const {privateKey} = generateKeyPairSync('rsa', {modulusLength: 1024})
    writeFileSync(rsa, privateKey.export({format: 'pem', type: 'pkcs8'}), {mode: 0o600})
    expect(() => loadIdentity(rsa)).to.throw(CryptoError, /not an Ed25519/)
    expect(() => loadIdentity(join(dir, 'missing.pem'))).to.throw(CryptoError, /cannot read/)
  })
})
