// The MultiChain driver's pure parts: frames, --chain specs, and how RPC failures are worded.
import {expect} from 'chai'
import {decodeFrame, encodeFrame, frameKey} from '../../../src/ledger/multichain/frame.js'
import {mapError, type RpcConfig} from '../../../src/ledger/multichain/rpc.js'
import {formatChainSpec, parseChainSpec} from '../../../src/ledger/multichain/spec.js'
import {streamName} from '../../../src/ledger/multichain/ledger.js'

const cfg: RpcConfig = {host: '10.0.0.5', port: 6744, user: 'u', pass: 'p', chain: 'c1'}

describe('MultiChain driver parts', () => {
  it('frames: round trip, a fixed vector, and damaged bytes refused', () => {
    const ps = [Buffer.from('a'), Buffer.alloc(0), Buffer.from('hello')]
    const f = encodeFrame(ps)
    expect(f.toString('hex')).to.equal('50465331' + '00000003' + '00000001' + '61' + '00000000' + '00000005' + '68656c6c6f')
    expect(decodeFrame(f)!.map(String)).to.deep.equal(['a', '', 'hello'])
    expect(decodeFrame(f.subarray(0, f.length - 1))).to.equal(null)
    expect(decodeFrame(Buffer.concat([f, Buffer.from('x')]))).to.equal(null)
    expect(decodeFrame(Buffer.from('not a frame'))).to.equal(null)
    expect(frameKey(f)).to.match(/^[0-9a-f]{64}$/)
    expect(frameKey(encodeFrame(ps))).to.equal(frameKey(f))
  })

  it('--chain specs', () => {
    expect(parseChainSpec('multichain://multichainrpc:s%40cret@10.0.0.5:6744/archive-chain')).to.deep.equal(
      {kind: 'rpc', host: '10.0.0.5', port: 6744, user: 'multichainrpc', pass: 's@cret', chain: 'archive-chain'})
    expect(parseChainSpec('multichain:new')).to.deep.equal({kind: 'new'})
    expect(parseChainSpec('multichain:archive@10.0.0.5:6745')).to.deep.equal({kind: 'join', chain: 'archive', host: '10.0.0.5', port: 6745})
    expect(parseChainSpec('embedded')).to.deep.equal({kind: 'embedded'})
    const spec = parseChainSpec('multichain://u:p%2Fq@h:1/c')
    expect(parseChainSpec(formatChainSpec(spec))).to.deep.equal(spec)
    expect(formatChainSpec(spec, true)).to.equal('multichain://u:***@h:1/c')
    for (const [bad, why] of [['multichain://u@h:1/c', /password are missing/], ['multichain://u:p@h/c', /port is missing/], ['multichain://u:p@h:1/', /chain name/],
      ['multichain:c@h:99999', /not a port/], ['chain@host:1', /not a chain this paciofs knows/], ['multichain://u:p@h:1/bad name', /chain name/]] as const) {
      expect(() => parseChainSpec(bad), bad).to.throw(why)
    }
  })

  it('stream names fit MultiChain\'s 32 characters', () => {
    expect(streamName('2ec67ffd-4248-4948-a8ce-d1d6fa070b77')).to.equal('pfs-2ec67ffd42484948a8ced1d6fa07')
    expect(streamName('2ec67ffd-4248-4948-a8ce-d1d6fa070b77')).to.have.length.at.most(32)
  })

  it('RPC failures become clear errors that say whether waiting helps', () => {
    const cases: Array<[unknown, RegExp, boolean]> = [
      ['<HTML><H1>401 Unauthorized.</H1></HTML>', /password was refused \(HTTP 401\)/, false],
      [{code: 'ECONNREFUSED', message: 'connect ECONNREFUSED'}, /connection refused/, true],
      [{code: 'ECONNRESET'}, /ECONNRESET/, true],
      [{code: 'ENOTFOUND'}, /host 10.0.0.5 not found/, false],
      [{code: -28, message: 'Loading block index...'}, /still starting/, true],
      [{code: -703, message: 'Not subscribed to this stream'}, /not subscribed/, false],
      [{code: -708, message: 'Entity with this identifier not found: s'}, /stream not found/, false],
      [{code: -704, message: 'No unspent output with create permission'}, /no spendable output yet/, true],
      [{code: -704, message: 'Publishing in this stream is not allowed from this address'}, /insufficient permissions/, false],
      [{code: -32601, message: 'Method not found'}, /needs MultiChain 1.0 or later/, false],
      [{code: -26, message: '64: scriptpubkey'}, /publish failed: 64: scriptpubkey \(code -26\)/, false],
    ]
    for (const [raw, text, retryable] of cases) {
      const e = mapError(cfg, 'publish', raw)
      expect(e.message, JSON.stringify(raw)).to.match(text)
      expect(e.message).to.include('10.0.0.5:6744')
      expect(e.retryable, JSON.stringify(raw)).to.equal(retryable)
      expect(e.code).to.equal('ELEDGER')
    }
    expect(mapError(cfg, 'publish', {code: -704, message: 'not allowed'}).suggestion).to.match(/grant/)
  })
})
