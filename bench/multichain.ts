/**
 * The MultiChain driver: records/s committed through a node by batch size,
 * next to the one-record-per-transaction baseline measured in the same run,
 * and the time from an append to its first confirmation as a function of
 * the chain's block time.
 *
 *   node --import tsx bench/multichain.ts [--seconds 4] [--batches 1,16,64,256,1024] [--tx-rate 1500]
 *        [--block-times 100,250,500,1000] [--json FILE] [--smoke]
 *
 * Node: the fake JSON-RPC node (test/fakes/multichain) over real HTTP on
 * loopback, accepting at most --tx-rate publish transactions per second
 * (a single MultiChain node handles about 1,000-2,000 tx/s), and blocks
 * every 200 ms in the throughput part; a real multichaind as well when one
 * is on PATH (a new chain in a temp dir, its own block time). A record is one
 * 64-byte payload (a record's salted hash plus envelope framing is about
 * that). Throughput is closed-loop: a window of outstanding append() calls is
 * kept full for --seconds; records/s = appends resolved (confirmed) / time.
 * "pipeline" rows run the same through Broadcast (signed envelopes of up to
 * 10,000 records, one envelope in flight, as a mount has it).
 */
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {loadavg, tmpdir} from 'node:os'
import {join} from 'node:path'
import {parseArgs} from 'node:util'
import {randomBytes} from 'node:crypto'
import {Broadcast} from '../src/broadcast/broadcast.js'
import {generateIdentity} from '../src/crypto/sign.js'
import {MultiChainLedger} from '../src/ledger/multichain/ledger.js'
import type {RpcConfig} from '../src/ledger/multichain/rpc.js'
import {FakeMultiChainNode} from '../test/fakes/multichain/node.js'
import {harnesses} from '../test/helpers/multichain.js'
import {benchArgs} from './args.js'

export interface ThroughputRow {
  node: string
  path: 'driver' | 'pipeline'
  batch: number
  records: number
  seconds: number
  recordsPerSec: number
  transactions: number
  txPerSec: number
}

export interface LatencyRow {
  node: string
  blockMs: number
  samples: number
  p50Ms: number
  p99Ms: number
  /** p50 / block time */
  ratio: number
}

const pct = (s: number[], p: number) => (s.length === 0 ? 0 : s[Math.min(s.length - 1, Math.floor(s.length * p))])
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d

async function driverThroughput(node: string, rpc: RpcConfig, batch: number, seconds: number, countTx: () => number): Promise<ThroughputRow> {
  const l = await MultiChainLedger.open({rpc, ledgerId: `bench-${randomBytes(4).toString('hex')}`, maxBatchPayloads: batch, pollMs: 20, maxInflight: 8, resendAfterMs: 60_000})
  try {
    const window = Math.min(200_000, Math.max(2000, batch * 64)) // enough outstanding appends to fill several blocks' worth of batches
    const tx0 = countTx()
    const t0 = performance.now()
    let done = 0
    let stop = false
    const worker = async () => {
      while (!stop) {
        await l.append([randomBytes(64)])
        if (!stop) done++
      }
    }
    const workers = Array.from({length: window}, worker)
    await new Promise(resolve => setTimeout(resolve, seconds * 1000))
    stop = true
    const elapsed = (performance.now() - t0) / 1000
    const transactions = countTx() - tx0
    await Promise.allSettled(workers)
    return {node, path: 'driver', batch, records: done, seconds: round(elapsed), recordsPerSec: Math.round(done / elapsed), transactions, txPerSec: Math.round(transactions / elapsed)}
  } finally {
    await l.close()
  }
}

async function pipelineThroughput(node: string, rpc: RpcConfig, seconds: number, countTx: () => number): Promise<ThroughputRow> {
  const dir = mkdtempSync(join(tmpdir(), 'pacio-bench-mc-'))
  const l = await MultiChainLedger.open({rpc, ledgerId: `bench-${randomBytes(4).toString('hex')}`, pollMs: 20, resendAfterMs: 60_000})
  const bc = await new Broadcast({ledger: l, identity: generateIdentity(), file: join(dir, 'bc.db'), maxBatch: 10_000, maxBatchBytes: 512 * 1024}).open()
  try {
    const tx0 = countTx()
    const t0 = performance.now()
    let done = 0
    let stop = false
    const feeder = async () => {
      while (!stop) {
        const ps = bc.broadcastMany(Array.from({length: 2000}, () => randomBytes(32)))
        await Promise.all(ps)
        if (!stop) done += ps.length
      }
    }
    const feeders = Array.from({length: 8}, feeder)
    await new Promise(resolve => setTimeout(resolve, seconds * 1000))
    stop = true
    const elapsed = (performance.now() - t0) / 1000
    const transactions = countTx() - tx0
    await Promise.allSettled(feeders.map(f => Promise.race([f, new Promise(resolve => setTimeout(resolve, 5000))])))
    return {node, path: 'pipeline', batch: 10_000, records: done, seconds: round(elapsed), recordsPerSec: Math.round(done / elapsed), transactions, txPerSec: Math.round(transactions / elapsed)}
  } finally {
    await bc.close()
    await l.close()
    rmSync(dir, {recursive: true, force: true})
  }
}

async function latency(node: string, rpc: RpcConfig, blockMs: number, samples: number): Promise<LatencyRow> {
  const l = await MultiChainLedger.open({rpc, ledgerId: `bench-${randomBytes(4).toString('hex')}`, pollMs: 10})
  try {
    const ms: number[] = []
    for (let i = 0; i < samples; i++) {
      await new Promise(resolve => setTimeout(resolve, Math.random() * blockMs)) // arrive at any point of a block interval
      const t0 = performance.now()
      await l.append([randomBytes(64)])
      ms.push(performance.now() - t0)
    }
    ms.sort((a, b) => a - b)
    return {node, blockMs, samples, p50Ms: round(pct(ms, 0.5)), p99Ms: round(pct(ms, 0.99)), ratio: round(pct(ms, 0.5) / blockMs, 2)}
  } finally {
    await l.close()
  }
}

export interface MultiChainBenchOptions {
  seconds: number
  batches: number[]
  txRate: number
  blockTimes: number[]
  samples: number
  real?: boolean
}

export async function benchMultiChain(o: MultiChainBenchOptions, log: (s: string) => void = () => {}): Promise<{throughput: ThroughputRow[]; latency: LatencyRow[]; real: string}> {
  const throughput: ThroughputRow[] = []
  const lat: LatencyRow[] = []
  // throughput on the fake, each batch size on a fresh node; baseline (batch 1) first and last
  const order = [...o.batches, o.batches[0]]
  for (const batch of order) {
    const fake = await new FakeMultiChainNode({blockTimeMs: 200, txPerSecond: o.txRate}).start()
    try {
      log(`fake node: batch ${batch}...`)
      throughput.push(await driverThroughput(`fake (${o.txRate} tx/s)`, fake.rpc, batch, o.seconds, () => fake.calls.get('publish') ?? 0))
    } finally {
      await fake.stop()
    }
  }
  {
    const fake = await new FakeMultiChainNode({blockTimeMs: 200, txPerSecond: o.txRate}).start()
    try {
      log('fake node: pipeline...')
      throughput.push(await pipelineThroughput(`fake (${o.txRate} tx/s)`, fake.rpc, o.seconds, () => fake.calls.get('publish') ?? 0))
    } finally {
      await fake.stop()
    }
  }
  for (const blockMs of o.blockTimes) {
    const fake = await new FakeMultiChainNode({blockTimeMs: blockMs, txPerSecond: o.txRate}).start()
    try {
      log(`fake node: latency at block time ${blockMs} ms...`)
      lat.push(await latency('fake', fake.rpc, blockMs, o.samples))
    } finally {
      await fake.stop()
    }
  }
  const real = harnesses.find(h => h.name === 'real multichaind')!
  const why = real.unavailable()
  if (!why && o.real !== false) {
    const chain = await real.start()
    try {
      for (const batch of [o.batches[0], o.batches.at(-1)!]) {
        log(`real node: batch ${batch}...`)
        throughput.push(await driverThroughput('multichaind', chain.rpc, batch, o.seconds, () => 0))
      }
      lat.push(await latency('multichaind', chain.rpc, chain.blockMs, Math.min(o.samples, 10)))
    } finally {
      await chain.close()
    }
  }
  return {throughput, latency: lat, real: why ?? 'measured'}
}

function load(): string {
  return loadavg().map(l => l.toFixed(2)).join(', ')
}

const isMain = process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)
if (isMain) {
  const {values} = benchArgs(import.meta.url, () => parseArgs({options: {
    seconds: {type: 'string', default: '4'}, batches: {type: 'string', default: '1,16,64,256,1024'}, 'tx-rate': {type: 'string', default: '1500'},
    'block-times': {type: 'string', default: '100,250,500,1000'}, samples: {type: 'string', default: '30'}, json: {type: 'string'}, smoke: {type: 'boolean', default: false},
  }}))
  const o: MultiChainBenchOptions = values.smoke
    ? {seconds: 1.5, batches: [1, 64], txRate: 1500, blockTimes: [50], samples: 3, real: false}
    : {seconds: Number(values.seconds), batches: values.batches!.split(',').map(Number), txRate: Number(values['tx-rate']), blockTimes: values['block-times']!.split(',').map(Number), samples: Number(values.samples)}
  const loadBefore = load()
  const r = await benchMultiChain(o, s => process.stderr.write(`${s}\n`))
  const loadAfter = load()
  const base = r.throughput.filter(t => t.batch === o.batches[0] && t.path === 'driver' && t.node.startsWith('fake'))
  const baseRate = base.reduce((a, t) => a + t.recordsPerSec, 0) / Math.max(1, base.length)
  console.log(`load average: ${loadBefore} (start), ${loadAfter} (end); real multichaind: ${r.real === 'measured' ? 'measured' : 'not measured (' + r.real.replace(/:.*/, '') + ')'}\n`)
  console.log('| node | path | records per transaction (max) | records/s | transactions/s | vs baseline (batch 1) | target >= 10,000 |')
  console.log('|---|---|---:|---:|---:|---:|---|')
  for (const t of r.throughput) {
    console.log(`| ${t.node} | ${t.path} | ${t.batch} | ${t.recordsPerSec.toLocaleString('en')} | ${t.txPerSec.toLocaleString('en')} | ${t.node.startsWith('fake') ? `${round(t.recordsPerSec / baseRate, 1)}x` : ''} | ${t.batch === 1 ? '(baseline)' : t.recordsPerSec >= 10_000 ? 'yes' : '**NO**'} |`)
  }
  console.log('\n| node | block time (ms) | samples | append -> 1st confirmation p50 (ms) | p99 (ms) | p50 / block time |')
  console.log('|---|---:|---:|---:|---:|---:|')
  for (const l of r.latency) console.log(`| ${l.node} | ${l.blockMs} | ${l.samples} | ${l.p50Ms} | ${l.p99Ms} | ${l.ratio} |`)
  if (values.json) writeFileSync(values.json, JSON.stringify({options: o, load: {before: loadBefore, after: loadAfter}, ...r}, null, 2))
}
