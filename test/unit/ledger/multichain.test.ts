/**
 * The MultiChain driver's suite. Every test runs against the fake node in
 * MultiChain 1.0 and 2.0 reply mode, and against a real multichaind when one
 * is on PATH; what only a fake can stage (reorganisations, a node that lags
 * or loses its mempool on demand) is marked and skipped on the real node.
 */
import {expect} from 'chai'
import {randomBytes} from 'node:crypto'
import {MultiChainLedger, streamName} from '../../../src/ledger/multichain/ledger.js'
import {encodeFrame, frameKey} from '../../../src/ledger/multichain/frame.js'
import {RpcClient, RpcError} from '../../../src/ledger/multichain/rpc.js'
import type {Block, Ledger} from '../../../src/ledger/types.js'
import type {FakeNodeOptions} from '../../fakes/multichain/node.js'
import {harnesses, type ChainUnderTest} from '../../helpers/multichain.js'

const until = async (cond: () => boolean | Promise<boolean>, ms = 20_000) => {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('timed out waiting')
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

async function readAll(l: Ledger, from = 0): Promise<Block[]> {
  const out: Block[] = []
  for await (const b of l.read(from)) out.push(b)
  return out
}

const payloadsOf = (blocks: Block[]) => blocks.flatMap(b => b.txs.map(t => t.payload.toString('hex')))

for (const h of harnesses) {
  describe(`MultiChain driver against the ${h.name}`, function () {
    this.timeout(120_000)
    const why = h.unavailable()
    if (why) {
      it.skip(`(skipped: ${why})`)
      return
    }

    let chain: ChainUnderTest
    const open: MultiChainLedger[] = []
    const fakeOnly = function (this: Mocha.Context) {
      if (!h.name.startsWith('fake')) this.skip()
    }

    /** open() on a chain that mines only on demand: mine meanwhile (the stream's creation needs a block) */
    async function ledgerMining(extra: Partial<Parameters<typeof MultiChainLedger.open>[0]> = {}) {
      const timer = setInterval(() => chain.fake!.chain.mine(), 20)
      try {
        return await ledger(extra)
      } finally {
        clearInterval(timer)
      }
    }

    async function start(opts: FakeNodeOptions = {}) {
      chain = await h.start(opts)
      return chain
    }

    async function ledger(extra: Partial<Parameters<typeof MultiChainLedger.open>[0]> = {}, id = 'vol-' + randomBytes(6).toString('hex')) {
      const l = await MultiChainLedger.open({rpc: chain.rpc, ledgerId: id, pollMs: 10, resendAfterMs: 500, startTimeoutMs: 20_000, closeTimeoutMs: 20_000, ...extra})
      open.push(l)
      return l
    }

    afterEach(async () => {
      for (const l of open.splice(0)) await l.close()
      await chain?.close()
      chain = undefined as unknown as ChainUnderTest
    })

    it('creates and subscribes the volume\'s stream; epoch = block height, txid = MultiChain txid:index', async () => {
      await start()
      const l = await ledger()
      const [c] = await l.append([Buffer.from('first record')])
      expect(c.txid).to.match(/^[0-9a-f]{64}:0$/)
      const info = await new RpcClient(chain.rpc).call<Array<{name: string; subscribed: boolean}>>('liststreams', l.stream)
      expect(info[0]).to.include({name: l.stream, subscribed: true})
      const blocks = await readAll(l)
      const b = blocks.find(x => x.txs.length > 0)!
      expect(b.epoch).to.equal(c.epoch)
      expect(b.txs.map(t => [t.txid, t.payload.toString()])).to.deep.equal([[c.txid, 'first record']])
      const [listed] = await new RpcClient(chain.rpc).call<Array<{hash: string; height: number}>>('listblocks', c.epoch)
      expect(b.hash).to.equal(listed.hash)
      expect(blocks[c.epoch - 1].hash).to.equal(b.prevHash)
      expect(blocks.map(x => x.epoch)).to.deep.equal(blocks.map((_, i) => i))
    })

    it('batches concurrent appends into few transactions and reads every payload back once', async () => {
      await start()
      const l = await ledger()
      const sent = Array.from({length: 300}, (_, i) => Buffer.from(`p${i}`))
      const done = await Promise.all(sent.map(p => l.append([p])))
      const txids = new Set(done.map(([c]) => c.txid.split(':')[0]))
      expect(txids.size).to.be.lessThan(30)
      if (chain.fake) expect(chain.fake.calls.get('publish')).to.equal(txids.size)
      const got = payloadsOf(await readAll(l))
      expect([...got].sort()).to.deep.equal(sent.map(p => p.toString('hex')).sort())
      // each append resolved with the place read() shows
      const where = new Map((await readAll(l)).flatMap(b => b.txs.map(t => [t.payload.toString(), `${b.epoch}/${t.txid}`])))
      done.forEach(([c], i) => expect(where.get(`p${i}`)).to.equal(`${c.epoch}/${c.txid}`))
    })

    it('acknowledges and shows a block only once it has the configured confirmations', async () => {
      await start()
      const l = await ledger({confirmations: 3})
      const [c] = await l.append([Buffer.from('deep enough')])
      const rpc = new RpcClient(chain.rpc)
      const tip = (await rpc.call<{blocks: number}>('getblockchaininfo')).blocks
      expect(tip - c.epoch + 1).to.be.at.least(3)
      const head = await l.head()
      const tipAfter = (await rpc.call<{blocks: number}>('getblockchaininfo')).blocks
      expect(head.epoch).to.be.at.most(tipAfter - 2)
      const blocks = await readAll(l)
      const tipLast = (await rpc.call<{blocks: number}>('getblockchaininfo')).blocks
      expect(blocks.at(-1)!.epoch).to.be.at.most(tipLast - 2)
      expect(blocks.at(-1)!.epoch).to.be.at.least(tip - 2)
    })

    it('on demand: nothing is acknowledged before its block is mined (fake)', async function () {
      fakeOnly.call(this)
      await start({blockTimeMs: 0})
      const l = await ledgerMining({confirmations: 2})
      let settled = false
      const p = l.append([Buffer.from('waiting')]).then(r => {
        settled = true
        return r
      })
      await until(() => (chain.fake!.calls.get('publish') ?? 0) > 0 && chain.fake!.chain.mempool.length > 0)
      await chain.mine(1)
      await new Promise(resolve => setTimeout(resolve, 100))
      expect(settled).to.equal(false) // one confirmation only
      expect(payloadsOf(await readAll(l))).to.deep.equal([])
      await chain.mine(1)
      const [c] = await p
      expect(c.epoch).to.equal(chain.fake!.chain.height - 1)
    })

    it('follow delivers existing blocks, then new ones, each exactly once and in order', async () => {
      await start()
      const l = await ledger()
      await l.append([Buffer.from('before')])
      const seen: Block[] = []
      const stop = l.follow(0, b => seen.push(b))
      await l.append([Buffer.from('after-1')])
      await l.append([Buffer.from('after-2')])
      await until(() => payloadsOf(seen).length === 3)
      await chain.mine(2)
      await new Promise(resolve => setTimeout(resolve, 150))
      stop()
      expect(seen.map(b => b.epoch)).to.deep.equal(seen.map((_, i) => i))
      expect(payloadsOf(seen).map(p => Buffer.from(p, 'hex').toString())).to.deep.equal(['before', 'after-1', 'after-2'])
    })

    it('payloads larger than the node shows inline are fetched with gettxoutdata', async () => {
      await start()
      const l = await ledger()
      const big = randomBytes(100_000)
      const [c] = await l.append([big])
      const b = (await readAll(l)).find(x => x.epoch === c.epoch)!
      expect(b.txs[0].payload.equals(big)).to.equal(true)
      if (chain.fake) expect(chain.fake.calls.get('gettxoutdata')).to.be.at.least(1)
    })

    it('an append of a payload already committed resolves to its place and publishes nothing', async () => {
      await start()
      const l = await ledger()
      const [a] = await l.append([Buffer.from('once')])
      const publishes = chain.fake?.calls.get('publish')
      const [b] = await l.append([Buffer.from('once')])
      expect(b).to.deep.equal(a)
      if (chain.fake) expect(chain.fake.calls.get('publish')).to.equal(publishes)
    })

    it('a batch that reached the chain twice is read once, at its first place', async () => {
      await start()
      const l = await ledger()
      await l.append([Buffer.from('warm-up')])
      const frame = encodeFrame([Buffer.from('copy')])
      const rpc = new RpcClient(chain.rpc)
      const t1 = await rpc.call<string>('publish', l.stream, frameKey(frame), frame.toString('hex'))
      await chain.mine(1)
      await rpc.call<string>('publish', l.stream, frameKey(frame), frame.toString('hex'))
      await chain.mine(2)
      await until(async () => (await rpc.call<unknown[]>('liststreamitems', l.stream, false, 100)).length === 3 && (await l.head()).epoch > 0)
      await chain.mine(1)
      const blocks = await readAll(l)
      const copies = blocks.flatMap(b => b.txs).filter(t => t.payload.toString() === 'copy')
      expect(copies.map(t => t.txid)).to.deep.equal([`${t1}:0`])
    })

    it('clear errors: bad credentials (HTTP 401), connection refused, stream not found, not subscribed', async () => {
      await start()
      let err = await MultiChainLedger.open({rpc: {...chain.rpc, pass: 'wrong'}, ledgerId: 'v1', startTimeoutMs: 500}).catch(e => e)
      expect(err).to.be.instanceOf(RpcError)
      expect(err.message).to.match(/password was refused \(HTTP 401\)/)
      err = await MultiChainLedger.open({rpc: {...chain.rpc, port: 1}, ledgerId: 'v1', startTimeoutMs: 300}).catch(e => e)
      expect(err.message).to.match(/connection refused/)
      err = await MultiChainLedger.open({rpc: chain.rpc, ledgerId: 'never-mounted', readonly: true, startTimeoutMs: 2000}).catch(e => e)
      expect(err.code).to.equal('ENOVOLUME')
      expect(err.message).to.match(/stream pfs-nevermounted not found/)
      const rpc = new RpcClient(chain.rpc)
      err = await rpc.call('liststreamitems', 'no-such-stream').catch(e => e)
      expect(err.rpcCode).to.equal(-708)
      expect(err.message).to.match(/stream not found/)
      const l = await ledger()
      await rpc.call('create', 'stream', 'other-stream', true)
      await chain.mine(1)
      err = await rpc.call('liststreamitems', 'other-stream').catch(e => e)
      expect(err.rpcCode).to.equal(-703)
      expect(err.message).to.match(/not subscribed/)
      expect(l.stream).to.equal(streamName(l.ledgerId))
    })

    it('a fresh chain answers -704 until its first blocks: open waits and then succeeds (fake)', async function () {
      fakeOnly.call(this)
      await start({premine: 0, blockTimeMs: 0})
      const rpc = new RpcClient(chain.rpc)
      const e = await rpc.call('create', 'stream', 'early', true).catch(x => x)
      expect(e.rpcCode).to.equal(-704)
      expect(e.retryable).to.equal(true)
      const opening = MultiChainLedger.open({rpc: chain.rpc, ledgerId: 'fresh', pollMs: 10, startTimeoutMs: 10_000})
      await new Promise(resolve => setTimeout(resolve, 400))
      const timer = setInterval(() => chain.fake!.chain.mine(), 30)
      try {
        const l = await opening
        open.push(l)
        const [c] = await l.append([Buffer.from('funded')])
        expect(c.epoch).to.be.greaterThan(1)
      } finally {
        clearInterval(timer)
      }
    })

    it('a node still syncing is waited for, then reported clearly (fake)', async function () {
      fakeOnly.call(this)
      await start()
      chain.fake!.chain.syncLag = 50
      const err = await MultiChainLedger.open({rpc: chain.rpc, ledgerId: 'v2', startTimeoutMs: 400}).catch(e => e)
      expect(err.message).to.match(/still syncing \(block \d+ of \d+\)/)
    })

    it('a node that restarts, away for a while and without its mempool, delays records but loses none', async () => {
      await start()
      const l = await ledger()
      const rpc = new RpcClient(chain.rpc)
      const sent = Array.from({length: 50}, (_, i) => Buffer.from(`r${i}`))
      const first = Promise.all(sent.slice(0, 25).map(p => l.append([p])))
      await until(async () => (await rpc.call<unknown[]>('liststreamitems', l.stream, false, 1000).catch(() => [])).length > 0, 10_000)
      await chain.restart(1500, {dropMempool: true})
      const second = Promise.all(sent.slice(25).map(p => l.append([p])))
      await Promise.all([first, second])
      const got = payloadsOf(await readAll(l))
      expect([...got].sort()).to.deep.equal(sent.map(p => p.toString('hex')).sort())
      expect(new Set(got).size).to.equal(got.length)
    })

    it('a reorganisation that drops and reorders confirmed batches: re-published, each delivered exactly once (fake)', async function () {
      fakeOnly.call(this)
      await start({blockTimeMs: 0})
      const timer = setInterval(() => chain.fake!.chain.mine(), 40)
      try {
        const l = await ledger({resendAfterMs: 200})
        const warnings: string[] = []
        l.onWarning = w => warnings.push(w)
        const seen: Block[] = []
        const stop = l.follow(0, b => seen.push(b))
        const sent = Array.from({length: 40}, (_, i) => Buffer.from(`g${i}`))
        await Promise.all(sent.slice(0, 20).map(p => l.append([p])))
        clearInterval(timer)
        await until(() => payloadsOf(seen).length === 20)
        // replace the last 3 blocks: half of what they held conflicts and is gone, the rest moves
        let k = 0
        chain.fake!.chain.reorg(3, {drop: () => k++ % 2 === 0, reorder: true})
        const again = setInterval(() => chain.fake!.chain.mine(), 40)
        try {
          await Promise.all(sent.slice(20).map(p => l.append([p])))
          await until(() => new Set(payloadsOf(seen)).size === 40, 20_000)
          await new Promise(resolve => setTimeout(resolve, 300))
        } finally {
          clearInterval(again)
        }
        stop()
        expect(warnings.some(w => /reorganisation/.test(w)), warnings.join('\n')).to.equal(true)
        expect(warnings.some(w => /vanished.*publishing it again/.test(w)), warnings.join('\n')).to.equal(true)
        const delivered = payloadsOf(seen)
        expect(delivered.length, 'nothing delivered twice').to.equal(40)
        expect([...delivered].sort()).to.deep.equal(sent.map(p => p.toString('hex')).sort())
        const onChain = payloadsOf(await readAll(l))
        expect([...onChain].sort()).to.deep.equal(sent.map(p => p.toString('hex')).sort())
      } finally {
        clearInterval(timer)
      }
    })

    it('a reorganisation above the confirmed head is never seen by readers (fake)', async function () {
      fakeOnly.call(this)
      await start({blockTimeMs: 0})
      const l = await ledgerMining({confirmations: 3})
      const seen: Block[] = []
      const stop = l.follow(0, b => seen.push(b))
      const p = l.append([Buffer.from('moves')])
      await until(() => chain.fake!.chain.mempool.length > 0)
      await chain.mine(1)
      chain.fake!.chain.reorg(1, {leaveInMempool: true}) // its block is replaced before it is confirmed
      await chain.mine(4)
      const [c] = await p
      await until(() => seen.length > 0 && seen.at(-1)!.epoch >= c.epoch)
      stop()
      expect(payloadsOf(seen).map(x => Buffer.from(x, 'hex').toString())).to.deep.equal(['moves'])
      expect(seen.find(b => b.txs.length > 0)!.epoch).to.equal(c.epoch)
    })

    it('items another program put in the stream are read as they are (the layer above judges them)', async () => {
      await start()
      const l = await ledger()
      const rpc = new RpcClient(chain.rpc)
      await rpc.call('publish', l.stream, 'junk', Buffer.from('not a frame').toString('hex'))
      await l.append([Buffer.from('mine')])
      await chain.mine(1)
      await until(async () => payloadsOf(await readAll(l)).length === 2)
      const txs = (await readAll(l)).flatMap(b => b.txs)
      expect(txs.map(t => t.payload.toString()).sort()).to.deep.equal(['mine', 'not a frame'])
    })

    it('MultiChain 2.0 items published as {json} or {text} are read as their bytes (fake 2.0)', async function () {
      if (!h.name.includes('2.0')) this.skip()
      await start()
      const l = await ledger()
      const rpc = new RpcClient(chain.rpc)
      await rpc.call('publish', l.stream, 'j', {json: {a: 1}})
      await rpc.call('publish', l.stream, 't', {text: 'plain words'})
      await l.append([Buffer.from('mine')])
      await chain.mine(1)
      await until(async () => payloadsOf(await readAll(l)).length === 3)
      const got = (await readAll(l)).flatMap(b => b.txs.map(t => t.payload.toString()))
      expect(got.sort()).to.deep.equal(['mine', 'plain words', '{"a":1}'])
    })

    it('validateAll checks heights and links; checkpoints name height and block hash and are checked against the chain', async () => {
      await start()
      const {generateIdentity} = await import('../../../src/crypto/sign.js')
      const l = await ledger({identity: generateIdentity()})
      await l.append([Buffer.from('cp')])
      await l.validateAll()
      const cp = await l.head()
      const [b] = await new RpcClient(chain.rpc).call<Array<{hash: string}>>('listblocks', cp.epoch)
      expect(cp.headHash).to.equal(b.hash)
      expect(await l.consistency(cp)).to.include({ok: true})
      expect(await l.consistency({...cp, headHash: 'ab'.repeat(32)})).to.include({ok: false})
      expect(await l.consistency({...cp, epoch: cp.epoch + 1000})).to.include({ok: false, kind: 'checkpoint-signature'})
    })
  })
}
