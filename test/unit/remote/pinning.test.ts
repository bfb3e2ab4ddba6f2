import {expect} from 'chai'
import {X509Certificate} from 'node:crypto'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {certFingerprint, transcript} from '../../../src/remote/auth.js'
import {pinServer} from '../../../src/remote/known-servers.js'
import {loadOrCreateServerTls} from '../../../src/server/tls.js'
import {makeTempDir, removeTree} from '../../helpers/tmp.js'

describe('remote: server key pinning and the handshake transcript', function () {
  this.timeout(20_000)
  let dir: string
  beforeEach(async () => {
    dir = await makeTempDir('pinning')
  })
  afterEach(() => removeTree(dir))

  const certOf = (tls: {cert: Buffer}) => {
    const c = new X509Certificate(tls.cert)
    return {der: c.raw, pem: c.toString()}
  }

  it('the server makes its key once and keeps it', async () => {
    const a = await loadOrCreateServerTls(join(dir, 's'))
    const b = await loadOrCreateServerTls(join(dir, 's'))
    expect(a.created).to.equal(true)
    expect(b.created).to.equal(false)
    expect(b.fingerprint.equals(a.fingerprint)).to.equal(true)
    expect(certFingerprint(new X509Certificate(a.cert).raw).equals(a.fingerprint)).to.equal(true)
  })

  it('pins on first contact, accepts the same key, refuses a changed one unless told to trust it', async () => {
    const known = join(dir, 'known-servers.json')
    const first = certOf(await loadOrCreateServerTls(join(dir, 's1')))
    const other = certOf(await loadOrCreateServerTls(join(dir, 's2')))
    expect(pinServer(known, 'h:1', first).pinnedNow).to.equal(true)
    expect(pinServer(known, 'h:1', first).pinnedNow).to.equal(false)
    expect(() => pinServer(known, 'h:1', other)).to.throw(/presents a different key than before/)
    expect(pinServer(known, 'h:2', other).pinnedNow).to.equal(true) // another address is another server
    expect(pinServer(known, 'h:1', other, {trustNew: true}).pinnedNow).to.equal(true)
    expect(() => pinServer(known, 'h:1', first)).to.throw(/different key/)
    expect(JSON.parse(readFileSync(known, 'utf8'))['h:1'].fingerprint).to.equal(certFingerprint(other.der).toString('hex'))
  })

  it('the signed transcript binds nonce, server key, volume and member, unambiguously', () => {
    const n = Buffer.alloc(32, 1)
    const fp = Buffer.alloc(32, 2)
    const t = transcript(n, fp, 'vol', 'ab')
    expect(transcript(n, fp, 'vol', 'ab').equals(t)).to.equal(true)
    expect(transcript(Buffer.alloc(32, 3), fp, 'vol', 'ab').equals(t)).to.equal(false)
    expect(transcript(n, Buffer.alloc(32, 3), 'vol', 'ab').equals(t)).to.equal(false)
    expect(transcript(n, fp, 'vo', 'lab').equals(t)).to.equal(false) // length-prefixed: no shifting between fields
    expect(transcript(n, fp, 'vol', 'ac').equals(t)).to.equal(false)
  })
})
