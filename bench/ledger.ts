/**
 * Embedded ledger throughput and latency.
 *
 *   node --import tsx bench/ledger.ts [--seconds 5] [--callers 32] [--batch 100]
 *        [--size 200] [--writer both|worker|inline] [--rate 0] [--prefill 0] [--json] [--smoke]
 *
 * Closed loop (the default, `--rate 0`): each of `callers` concurrent callers
 * appends batches of `batch` fresh payloads of `size` bytes, back to back:
 * the most the ledger commits. Open loop (`--rate R`): batches of `batch` are
 * offered on a fixed schedule, R payloads/s in all, whether or not earlier
 * ones have committed (`callers` is then unused), and each append's latency
 * runs from the moment it was due, so a ledger that falls behind cannot slow
 * the offered load down and hide its own queueing. Reports offered and
 * durably committed payloads/s, append latency percentiles, blocks written,
 * and the event-loop delay seen meanwhile (the stall a commit causes to
 * everything else on the thread).
 * `--prefill N` first commits N payloads (untimed, batches of 1,000), so that
 * the measurement runs against a ledger that already holds them: the txid
 * index is a B-tree of random keys, whose cost per record grows with it.
 * Writers are measured side by side in one run. `--smoke` runs one tiny
 * iteration (used by the unit tests so this file cannot rot).
 */
import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {monitorEventLoopDelay} from 'node:perf_hooks'
import {parseArgs} from 'node:util'
import {generateIdentity} from '../src/crypto/sign.js'
import {EmbeddedLedger, type WriterPlacement} from '../src/ledger/embedded/index.js'
import {benchArgs} from './args.js'

export interface LedgerBenchResult {
  writer: WriterPlacement
  seconds: number
  payloads: number
  /** payloads/s handed to append() (closed loop: the same as committed) */
  offeredPerSec: number
  /** durably committed payloads/s */
  payloadsPerSec: number
  blocks: number
  avgBlockTxs: number
  appendP50Ms: number
  appendP99Ms: number
  appendMaxMs: number
  loopDelayP99Ms: number
  loopDelayMaxMs: number
  /** bytes this process wrote (write(2) and the like: /proc/self/io wchar) per committed payload; null where unreadable */
  bytesWrittenPerPayload: number | null
  /** CPU time of the whole process (all threads: main, the writer's, SQLite's, GC) per committed payload, µs */
  cpuUsPerPayload: number
}

/** /proc/self/io's wchar: what the load does not change, unlike the rates. */
function writtenBytes(): number | null {
  try {
    const m = /^wchar: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'))
    return m ? Number(m[1]) : null
  } catch {
    return null
  }
}

export interface LedgerBenchOptions {
  seconds: number
  callers: number
  batch: number
  size: number
  rate: number
  writers: WriterPlacement[]
  /** payloads committed before the measurement (untimed) */
  prefill?: number
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}

const round = (x: number) => Math.round(x * 10) / 10
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export async function benchOne(writer: WriterPlacement, o: Omit<LedgerBenchOptions, 'writers'>): Promise<LedgerBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'pacio-bench-ledger-'))
  try {
    const ledger = await EmbeddedLedger.open({file: join(dir, 'ledger.db'), ledgerId: 'bench', identity: generateIdentity(), writer})
    const filler = Buffer.alloc(o.size, 'x')
    let counter = 0
    const fresh = () => {
      const b = Buffer.from(filler)
      b.writeUInt32BE(counter >>> 0, 0)
      b.writeUInt32BE(Math.floor(counter / 2 ** 32), Math.min(4, Math.max(0, o.size - 4)))
      counter++
      return b
    }
    for (let done = 0; done < (o.prefill ?? 0);) {
      const n = Math.min((o.prefill ?? 0) - done, 100_000)
      await Promise.all(Array.from({length: Math.ceil(n / 1000)}, (_, i) =>
        ledger.append(Array.from({length: Math.min(1000, n - i * 1000)}, fresh))))
      done += n
    }

    const latencies: number[] = []
    let payloads = 0
    let offered = 0
    const delay = monitorEventLoopDelay({resolution: 1})
    const startHead = (await ledger.head()).epoch
    const written0 = writtenBytes()
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    const end = t0 + o.seconds * 1000
    delay.enable()
    const appendOne = async (due: number) => {
      const batch = Array.from({length: o.batch}, fresh)
      offered += batch.length
      await ledger.append(batch)
      latencies.push(performance.now() - due)
      payloads += batch.length
    }
    if (o.rate > 0) {
      // open loop: every batch that is due goes out now, late ones included
      const interval = (o.batch * 1000) / o.rate
      const inFlight: Array<Promise<void>> = []
      for (let k = 0; ; k++) {
        const due = t0 + k * interval
        if (due >= end) break
        const wait = due - performance.now()
        if (wait > 1) await sleep(wait)
        inFlight.push(appendOne(due))
      }
      await Promise.all(inFlight)
    } else {
      await Promise.all(
        Array.from({length: o.callers}, async () => {
          do await appendOne(performance.now())
          while (performance.now() < end)
        }),
      )
    }
    const elapsed = (performance.now() - t0) / 1000
    const cpu = process.cpuUsage(cpu0)
    const written1 = writtenBytes()
    const offeredFor = o.rate > 0 ? o.seconds : elapsed
    delay.disable()
    const blocks = (await ledger.head()).epoch - startHead
    await ledger.close()
    latencies.sort((a, b) => a - b)
    return {
      writer,
      seconds: round(elapsed),
      payloads,
      offeredPerSec: Math.round(offered / offeredFor),
      payloadsPerSec: Math.round(payloads / elapsed),
      blocks,
      avgBlockTxs: Math.round(payloads / Math.max(1, blocks)),
      appendP50Ms: round(pct(latencies, 0.5)),
      appendP99Ms: round(pct(latencies, 0.99)),
      appendMaxMs: round(latencies.at(-1) ?? 0),
      loopDelayP99Ms: round(delay.percentile(99) / 1e6),
      loopDelayMaxMs: round(delay.max / 1e6),
      bytesWrittenPerPayload: written0 === null || written1 === null ? null : Math.round((written1 - written0) / Math.max(1, payloads)),
      cpuUsPerPayload: round((cpu.user + cpu.system) / Math.max(1, payloads)),
    }
  } finally {
    rmSync(dir, {recursive: true, force: true})
  }
}

export async function runLedgerBench(o: LedgerBenchOptions): Promise<LedgerBenchResult[]> {
  const out: LedgerBenchResult[] = []
  for (const w of o.writers) out.push(await benchOne(w, o))
  return out
}

async function main(): Promise<void> {
  const {values} = benchArgs(import.meta.url, () => parseArgs({
    options: {
      seconds: {type: 'string', default: '5'},
      callers: {type: 'string', default: '32'},
      batch: {type: 'string', default: '100'},
      size: {type: 'string', default: '200'},
      rate: {type: 'string', default: '0'},
      prefill: {type: 'string', default: '0'},
      writer: {type: 'string', default: 'both'},
      json: {type: 'boolean', default: false},
      smoke: {type: 'boolean', default: false},
    },
  }))
  const writers: WriterPlacement[] = values.writer === 'both' ? ['worker', 'inline'] : [values.writer as WriterPlacement]
  const opts: LedgerBenchOptions = values.smoke
    ? {seconds: 0.2, callers: 4, batch: 10, size: 64, rate: Number(values.rate) > 0 ? 2000 : 0, writers, prefill: 50} // a prefill too, so that it cannot rot
    : {seconds: Number(values.seconds), callers: Number(values.callers), batch: Number(values.batch), size: Number(values.size), rate: Number(values.rate), writers,
        prefill: Number(values.prefill)}
  const results = await runLedgerBench(opts)
  if (values.json) {
    process.stdout.write(JSON.stringify({bench: 'ledger', options: opts, results}) + '\n')
    return
  }
  process.stdout.write(
    `ledger bench: ${opts.rate ? `open loop, ${opts.rate} payloads/s offered` : `closed loop, ${opts.callers} callers`} in batches of ${opts.batch} payloads of ${opts.size} B, ${opts.seconds}s` +
      `${opts.prefill ? ` after ${opts.prefill} payloads` : ''}\n`,
  )
  for (const r of results) {
    process.stdout.write(
      `${r.writer.padEnd(7)} offered ${String(r.offeredPerSec).padStart(8)}/s  committed ${String(r.payloadsPerSec).padStart(8)} payloads/s  append p50 ${r.appendP50Ms} ms  p99 ${r.appendP99Ms} ms  max ${r.appendMaxMs} ms  ` +
        `blocks ${r.blocks} (avg ${r.avgBlockTxs} tx)  event-loop delay p99 ${r.loopDelayP99Ms} ms  max ${r.loopDelayMaxMs} ms  ` +
        `per payload: ${r.bytesWrittenPerPayload ?? '?'} B written, ${r.cpuUsPerPayload} µs CPU\n`,
    )
  }
  process.stdout.write(JSON.stringify({bench: 'ledger', options: opts, results}) + '\n')
}

if (import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().catch((error) => {
    process.stderr.write(`${(error as Error).stack ?? error}\n`)
    process.exitCode = 1
  })
}
