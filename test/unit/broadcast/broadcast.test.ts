import {expect} from 'chai'
import fc from 'fast-check'
import {join} from 'node:path'
import {Broadcast} from '../../../src/broadcast/broadcast.js'
import {deliver} from '../../../src/broadcast/deliver.js'
import type {Delivery, Violation} from '../../../src/broadcast/types.js'
import {generateIdentity} from '../../../src/crypto/sign.js'
import {PacioError} from '../../../src/errors.js'
import {EmbeddedLedger, type WriterPlacement} from '../../../src/ledger/embedded/index.js'
import type {Ledger} from '../../../src/ledger/types.js'
import {MultiChainLedger} from '../../../src/ledger/multichain/ledger.js'
import {MemoryLedger} from '../../fakes/memory-ledger.js'
import {FakeMultiChainNode} from '../../fakes/multichain/node.js'
import {byPid, collect, openSenders, render, tempDir} from './helpers.js'

const fakeNodes = new WeakMap<Ledger, FakeMultiChainNode>()
const mc = {confirmations: 1}

type Kind = 'memory' | WriterPlacement | 'multichain-1.0' | 'multichain-2.0'

/** The ledger factories the properties run on; a MultiChain ledger comes with its own fake node, stopped by close(). */
async function makeLedger(kind: Kind, dir: string): Promise<Ledger> {
  if (kind === 'memory') return new MemoryLedger({ledgerId: 'vol-bc'})
  if (kind === 'multichain-1.0' || kind === 'multichain-2.0') {
    const node = await new FakeMultiChainNode({mode: kind === 'multichain-1.0' ? '1.0' : '2.0', blockTimeMs: 15, txPerSecond: 0}).start()
    const ledger = await MultiChainLedger.open({rpc: node.rpc, ledgerId: 'vol-bc', pollMs: 5, confirmations: mc.confirmations})
    fakeNodes.set(ledger, node)
    const close = ledger.close.bind(ledger)
    ledger.close = async () => {
      await close()
      await node.stop()
    }
    return ledger
  }
  return EmbeddedLedger.open({file: join(dir, 'ledger.db'), ledgerId: 'vol-bc', identity: generateIdentity(), writer: kind})
}

/**
 * Senders broadcast their scripts concurrently (each step: a few payloads,
 * then a random pause), then everything is checked against the properties.
 */
async function scenario(kind: Kind, scripts: Array<Array<{n: number; pause: number}>>, opts: {maxBatch: number; flushMs: number; retryMs?: number},
  disturb?: (node: FakeMultiChainNode) => Promise<void>) {
  const t = tempDir('pacio-bc-')
  const ledger = await makeLedger(kind, t.dir)
  try {
    const senders = await openSenders(ledger, t.dir, scripts.length, opts)
    const disturbing = disturb ? disturb(fakeNodes.get(ledger)!) : Promise.resolve()
    const sent = new Map<string, string[]>()
    const acks: Array<Promise<Delivery>> = []
    await Promise.all(
      senders.map(async (s, i) => {
        const mine: string[] = []
        sent.set(s.pid, mine)
        let k = 0
        for (const step of scripts[i]) {
          for (let j = 0; j < step.n; j++) {
            const text = `s${i}-${k++}`
            mine.push(text)
            acks.push(s.broadcast(Buffer.from(text)))
          }
          if (step.pause > 0) await new Promise((r) => setTimeout(r, step.pause))
        }
      }),
    )
    const acked = await Promise.all(acks)
    await disturbing
    await Promise.all(senders.map((s) => s.flush()))
    const a = await collect(ledger)
    const b = await collect(ledger) // a second, independent deliverer
    await Promise.all(senders.map((s) => s.close()))
    return {sent, acked, a, b, senders}
  } finally {
    await ledger.close()
    t.cleanup()
  }
}

function checkProperties(r: Awaited<ReturnType<typeof scenario>>) {
  const {sent, acked, a, b} = r
  expect(a.violations).to.deep.equal([])
  // agreement: two deliverers see the same sequence
  expect(render(b.deliveries)).to.deep.equal(render(a.deliveries))
  const got = byPid(a.deliveries)
  for (const [pid, list] of sent) {
    // validity + no duplication + FIFO: exactly what was sent, once, in order
    expect(got.get(pid) ?? [], `sender ${pid.slice(0, 8)}`).to.deep.equal(list)
  }
  // no creation: nothing delivered that no sender broadcast
  expect([...got.keys()].every((pid) => sent.has(pid))).to.equal(true)
  // each broadcast() promise names where its payload sits
  const where = new Set(a.deliveries.map((d) => `${d.pid}:${d.txid}:${d.seq}:${d.index}:${d.payload}`))
  for (const d of acked) expect(where.has(`${d.pid}:${d.txid}:${d.seq}:${d.index}:${d.payload}`)).to.equal(true)
}

const script = fc.array(fc.record({n: fc.integer({min: 0, max: 12}), pause: fc.integer({min: 0, max: 4})}), {minLength: 1, maxLength: 5})

describe('broadcast: properties with several concurrent senders', function () {
  this.timeout(180_000)

  it('memory ledger: random interleavings and batch sizes (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(script, {minLength: 2, maxLength: 4}),
        fc.integer({min: 1, max: 8}),
        fc.integer({min: 0, max: 3}),
        async (scripts, maxBatch, flushMs) => checkProperties(await scenario('memory', scripts, {maxBatch, flushMs})),
      ),
      {numRuns: 25},
    )
  })

  it('embedded ledger (inline writer): random interleavings and batch sizes (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(script, {minLength: 2, maxLength: 3}),
        fc.integer({min: 1, max: 8}),
        fc.integer({min: 0, max: 3}),
        async (scripts, maxBatch, flushMs) => checkProperties(await scenario('inline', scripts, {maxBatch, flushMs})),
      ),
      {numRuns: 8},
    )
  })

  for (const mode of ['2.0', '1.0'] as const) {
    it(`MultiChain driver (fake node, ${mode} replies): random interleavings and batch sizes (fast-check)`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(script, {minLength: 2, maxLength: 3}),
          fc.integer({min: 1, max: 8}),
          fc.integer({min: 0, max: 3}),
          async (scripts, maxBatch, flushMs) => checkProperties(await scenario(`multichain-${mode}`, scripts, {maxBatch, flushMs})),
        ),
        {numRuns: mode === '2.0' ? 6 : 4},
      )
    })
  }

  // A reorganisation no deeper than the confirmations keeps every property (FIFO order
  // included); a deeper one rewrites history the senders were told was final, which the
  // driver repairs without loss or duplication (test/unit/ledger/multichain.test.ts) but
  // which may reorder envelopes, and is then reported by the checker.
  it('MultiChain driver: a node restart without its mempool and a 3-block reorganisation (4 confirmations) lose, duplicate and reorder nothing', async () => {
    mc.confirmations = 4
    const scripts = Array.from({length: 3}, (_, i) => Array.from({length: 8}, (_, j) => ({n: 5 + ((i * 3 + j) % 5), pause: 20 + (j % 3) * 10})))
    const r = await scenario('multichain-2.0', scripts, {maxBatch: 4, flushMs: 2, retryMs: 20}, async (node) => {
      await new Promise((resolve) => setTimeout(resolve, 120))
      await node.restart(400, {dropMempool: true})
      await new Promise((resolve) => setTimeout(resolve, 150))
      let k = 0
      node.chain.reorg(3, {drop: () => k++ % 2 === 0, reorder: true})
    }).finally(() => {
      mc.confirmations = 1
    })
    checkProperties(r)
  })

  it('embedded ledger (worker writer): four senders, many payloads', async () => {
    const scripts = Array.from({length: 4}, (_, i) => Array.from({length: 6}, (_, j) => ({n: 20 + ((i * 7 + j) % 11), pause: j % 3})))
    checkProperties(await scenario('worker', scripts, {maxBatch: 16, flushMs: 2}))
  })
})

describe('broadcast: sender behaviour', function () {
  this.timeout(60_000)
  let t: ReturnType<typeof tempDir>
  beforeEach(() => {
    t = tempDir('pacio-bc-')
  })
  afterEach(() => t.cleanup())

  it('batches queued payloads into envelopes of at most maxBatch', async () => {
    const ledger = new MemoryLedger()
    const [s] = await openSenders(ledger, t.dir, 1, {maxBatch: 4, flushMs: 50})
    const ds = await Promise.all(Array.from({length: 10}, (_, i) => s.broadcast(Buffer.from(`b${i}`))))
    expect(ds.map((d) => d.seq)).to.deep.equal([1, 1, 1, 1, 2, 2, 2, 2, 3, 3])
    expect(ds.map((d) => d.index)).to.deep.equal([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    expect(ledger.allTxs()).to.have.length(3)
    await s.close()
  })

  it('isPending is true until the envelope is committed', async () => {
    const ledger = new MemoryLedger()
    const [s] = await openSenders(ledger, t.dir, 1, {flushMs: 0})
    ledger.hold()
    const p = s.broadcast(Buffer.from('wait'))
    expect(s.isPending(Buffer.from('wait'))).to.equal(true)
    await new Promise((r) => setTimeout(r, 10))
    expect(s.isPending(Buffer.from('wait'))).to.equal(true) // in the outbox now
    ledger.release()
    await p
    expect(s.isPending(Buffer.from('wait'))).to.equal(false)
    await s.close()
  })

  it('retries failed appends until the ledger takes the envelope', async () => {
    const ledger = new MemoryLedger()
    const [s] = await openSenders(ledger, t.dir, 1, {flushMs: 0, retryMs: 1})
    ledger.failNext(3)
    const d = await s.broadcast(Buffer.from('persistent'))
    expect(d.seq).to.equal(1)
    expect(ledger.appendCalls).to.equal(4)
    const {deliveries, violations} = await collect(ledger)
    expect(violations).to.deep.equal([])
    expect(deliveries.map((x) => x.payload.toString())).to.deep.equal(['persistent'])
    await s.close()
  })

  it('payloads queued at close are sent after reopening, in order', async () => {
    const ledger = new MemoryLedger()
    const identity = generateIdentity()
    const file = join(t.dir, 'me.db')
    let s = await new Broadcast({ledger, identity, file, flushMs: 10_000}).open()
    s.broadcast(Buffer.from('q1'))
    s.broadcast(Buffer.from('q2'))
    await s.close()
    expect(ledger.allTxs()).to.have.length(0)
    s = await new Broadcast({ledger, identity, file, flushMs: 0}).open()
    expect(s.isPending(Buffer.from('q1'))).to.equal(true)
    const d3 = await s.broadcast(Buffer.from('q3'))
    await s.flush()
    const {deliveries, violations} = await collect(ledger)
    expect(violations).to.deep.equal([])
    expect(deliveries.map((x) => x.payload.toString())).to.deep.equal(['q1', 'q2', 'q3'])
    expect(d3.seq).to.be.at.least(1)
    await s.close()
  })

  it('journaled payloads: delivered in order to the sink with their tags, mixed with stored ones, never written to the queue', async () => {
    const ledger = new MemoryLedger()
    const identity = generateIdentity()
    const file = join(t.dir, 'me.db')
    let s = await new Broadcast({ledger, identity, file, flushMs: 10_000, maxBatch: 3}).open()
    const heard: Array<{tag: number; d?: Delivery; error?: Error}> = []
    const sink = {delivered: (tag: number, d: Delivery) => heard.push({tag, d}), failed: (tag: number, error: Error) => heard.push({tag, error})}
    s.broadcastJournaled([Buffer.from('j1'), Buffer.from('j2')], sink, [10, 11])
    const stored = s.broadcast(Buffer.from('s1'))
    s.broadcastJournaled([Buffer.from('j3')], sink, [12])
    expect(s.isPending(Buffer.from('j3'))).to.equal(true)
    await s.flush()
    expect((await stored).seq).to.equal(1)
    expect(heard.map((h) => `${h.tag}:${h.d?.seq}/${h.d?.index}:${h.d?.payload}`)).to.deep.equal(['10:1/0:j1', '11:1/1:j2', '12:2/0:j3'])
    // queued but not sealed at a crash: the sink hears of the failure, and only the stored payload comes back after reopening
    heard.length = 0
    s.broadcastJournaled([Buffer.from('lost')], sink, [13])
    s.broadcast(Buffer.from('kept'))
    await s.close()
    expect(heard.map((h) => `${h.tag}:${h.error ? 'failed' : 'delivered'}`)).to.deep.equal(['13:failed'])
    s = await new Broadcast({ledger, identity, file, flushMs: 0}).open()
    await s.flush()
    const {deliveries, violations} = await collect(ledger)
    expect(violations).to.deep.equal([])
    expect(deliveries.map((x) => x.payload.toString())).to.deep.equal(['j1', 'j2', 's1', 'j3', 'kept'])
    await s.close()
  })

  it('re-sends an outbox envelope after a crash without duplicating it', async () => {
    const ledger = new MemoryLedger()
    const identity = generateIdentity()
    const file = join(t.dir, 'me.db')
    let s = await new Broadcast({ledger, identity, file, flushMs: 0}).open()
    await s.broadcast(Buffer.from('o1'))
    ledger.hold()
    s.broadcast(Buffer.from('o2')) // sealed into the outbox, append pending
    await new Promise((r) => setTimeout(r, 10))
    await s.close() // "crash": the append is still pending at the ledger
    ledger.release() // ...and lands after all
    await new Promise((r) => setTimeout(r, 10))
    s = await new Broadcast({ledger, identity, file, flushMs: 0}).open()
    await s.broadcast(Buffer.from('o3'))
    const {deliveries, violations} = await collect(ledger)
    expect(violations).to.deep.equal([])
    expect(deliveries.map((x) => `${x.seq}:${x.payload}`)).to.deep.equal(['1:o1', '2:o2', '3:o3'])
    await s.close()
  })

  it('recovers seq and prev from the ledger when the local state is lost', async () => {
    const ledger = new MemoryLedger()
    const identity = generateIdentity()
    let s = await new Broadcast({ledger, identity, file: join(t.dir, 'a.db'), flushMs: 0}).open()
    await s.broadcast(Buffer.from('l1'))
    await s.broadcast(Buffer.from('l2'))
    await s.close()
    s = await new Broadcast({ledger, identity, file: join(t.dir, 'fresh.db'), flushMs: 0}).open()
    const d = await s.broadcast(Buffer.from('l3'))
    expect(d.seq).to.equal(3)
    const {deliveries, violations} = await collect(ledger)
    expect(violations).to.deep.equal([])
    expect(deliveries.map((x) => x.payload.toString())).to.deep.equal(['l1', 'l2', 'l3'])
    await s.close()
  })

  it('refuses state of another sender or ledger, and a second opener', async () => {
    const ledger = new MemoryLedger({ledgerId: 'L1'})
    const file = join(t.dir, 's.db')
    const identity = generateIdentity()
    const s = await new Broadcast({ledger, identity, file}).open()
    let err = await new Broadcast({ledger, identity, file}).open().catch((e: PacioError) => e)
    expect(err).to.be.instanceOf(PacioError).with.property('code', 'EBUSY')
    await s.close()
    err = await new Broadcast({ledger, identity: generateIdentity(), file}).open().catch((e: PacioError) => e)
    expect(err).to.have.property('code', 'EFOREIGN')
    err = await new Broadcast({ledger: new MemoryLedger({ledgerId: 'L2'}), identity, file}).open().catch((e: PacioError) => e)
    expect(err).to.have.property('code', 'EFOREIGN')
  })
})

describe('broadcast: delivery streams', function () {
  this.timeout(60_000)
  let t: ReturnType<typeof tempDir>
  beforeEach(() => {
    t = tempDir('pacio-bc-')
  })
  afterEach(() => t.cleanup())

  it('follow delivers live, from several senders, like a later full read', async () => {
    const ledger = new MemoryLedger()
    const senders = await openSenders(ledger, t.dir, 3, {flushMs: 1, maxBatch: 3})
    const live: Delivery[] = []
    const bad: Violation[] = []
    const stream = deliver(ledger, 0, (d) => live.push(d), (v) => bad.push(v), {follow: true})
    await Promise.all(senders.flatMap((s, i) => Array.from({length: 10}, (_, k) => s.broadcast(Buffer.from(`${i}-${k}`)))))
    await new Promise((r) => setTimeout(r, 20))
    stream.stop()
    await stream.done
    const later = await collect(ledger)
    expect(bad).to.deep.equal([])
    expect(render(live)).to.deep.equal(render(later.deliveries))
    expect(live).to.have.length(30)
    await Promise.all(senders.map((s) => s.close()))
  })

  it('starting mid-ledger: replay from genesis or resume from a saved state', async () => {
    const ledger = new MemoryLedger()
    const senders = await openSenders(ledger, t.dir, 2, {flushMs: 0, maxBatch: 2})
    for (let k = 0; k < 6; k++) await Promise.all(senders.map((s, i) => s.broadcast(Buffer.from(`${i}-${k}`))))
    const all = await collect(ledger)
    const mid = Math.floor(ledger.headEpoch / 2)
    const tail = render(all.deliveries.filter((d) => d.epoch >= mid))
    // no state: replays genesis..mid-1 silently to learn each sender's position
    const fromMid = await collect(ledger, mid)
    expect(fromMid.violations).to.deep.equal([])
    expect(render(fromMid.deliveries)).to.deep.equal(tail)
    // saved state: a stream that read up to mid hands over its checker state
    const upToMid = Object.assign(Object.create(ledger) as MemoryLedger, {read: (from: number) => ledger.read(from, mid - 1)})
    const first = deliver(upToMid, 0, () => {}, () => {})
    await first.done
    const head = JSON.parse(JSON.stringify(first.state()))
    expect(head.nextEpoch).to.equal(mid)
    const resumed = await collect(ledger, mid, {state: head})
    expect(resumed.violations).to.deep.equal([])
    expect(render(resumed.deliveries)).to.deep.equal(tail)
    // a state for the wrong epoch is refused
    const wrong = deliver(ledger, 1, () => {}, () => {}, {state: head})
    const err = await wrong.done.catch((e: PacioError) => e)
    expect(err).to.have.property('code', 'EINPUT')
    await Promise.all(senders.map((s) => s.close()))
  })
})
