/**
 * Records per second durably committed through the whole recording pipeline
 * of a volume (recorder -> journal -> broadcast envelopes -> embedded ledger,
 * fsync'ed), and the time from an operation's record to its committed block.
 *
 *   node --import tsx bench/records.ts [--seconds 5] [--rate 50000] [--json] [--smoke]
 *
 * Operations are offered at `rate` records/s (in ticks of about 1 ms, as a busy
 * mount produces them; each tick offers what the rate owes by then, so a late
 * tick does not lower the load); each one's latency runs from record() to the moment its
 * block is committed (its envelope's append resolved). Targets (issue 2):
 * >= 50,000 records/s committed, p99 < 100 ms at that load.
 */
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {parseArgs} from 'node:util'
import {Broadcast} from '../src/broadcast/broadcast.js'
import type {Delivery} from '../src/broadcast/types.js'
import {generateIdentity} from '../src/crypto/sign.js'
import {EmbeddedLedger} from '../src/ledger/embedded/index.js'
import {Journal} from '../src/volume/journal.js'
import {Recorder, type BroadcastPort} from '../src/volume/recorder.js'
import {benchArgs} from './args.js'

export interface RecordsBenchResult {
  offeredPerSec: number
  committedPerSec: number
  records: number
  p50Ms: number
  p99Ms: number
  maxMs: number
}

const pct = (s: number[], p: number) => (s.length === 0 ? 0 : s[Math.min(s.length - 1, Math.floor(s.length * p))])
const round = (x: number) => Math.round(x * 10) / 10

export async function benchRecords(seconds: number, rate: number): Promise<RecordsBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'pacio-bench-records-'))
  try {
    const ledger = await EmbeddedLedger.open({file: join(dir, 'ledger.db'), ledgerId: 'bench', identity: generateIdentity()})
    const bc = await new Broadcast({ledger, identity: generateIdentity(), file: join(dir, 'broadcast.db')}).open()
    const journal = Journal.open(join(dir, 'journal.db'), 'bench')
    // time each record from record() to its commit
    const started = new Map<string, number>()
    const latencies: number[] = []
    const port: BroadcastPort = {
      pid: bc.pid,
      flush: () => bc.flush(),
      broadcastJournaled: (payloads, sink, tags) => bc.broadcastJournaled(payloads, {
        delivered(tag: number, d: Delivery) {
          const t0 = started.get(d.payload.toString('hex'))
          if (t0 !== undefined) latencies.push(performance.now() - t0)
          sink.delivered(tag, d)
        },
        failed: (tag: number, e: Error) => sink.failed(tag, e),
      }, tags),
    }
    const recorder = new Recorder(journal, port, bc.pid)
    const who = {uid: 0, gid: 0, pid: 1}
    const t0 = performance.now()
    let n = 0
    while (performance.now() - t0 < seconds * 1000) {
      const tick = performance.now()
      const batch: Array<Promise<unknown>> = []
      // as many records as the rate owes by now: a late tick (a loaded machine) catches up rather than lowering the load
      const owed = Math.max(1, Math.round(((tick - t0) / 1000) * rate) - n)
      for (let i = 0; i < owed; i++) {
        const at = performance.now()
        // the hash is known once the row is journaled, before its envelope can be committed
        batch.push(recorder.record({op: 'create', path: `/bench/f${n++}`, type: 'file', mode: 0o100644, uid: 0, gid: 0, size: 0}, who)
          .then(hash => started.set(hash.toString('hex'), at)))
      }

      await Promise.all(batch)
      const wait = 1 - (performance.now() - tick)
      if (wait > 0) await new Promise(r => setTimeout(r, wait))
    }

    const offeredFor = (performance.now() - t0) / 1000
    await recorder.committed()
    const total = (performance.now() - t0) / 1000
    latencies.sort((a, b) => a - b)
    await bc.close()
    await ledger.close()
    journal.close()
    return {offeredPerSec: Math.round(n / offeredFor), committedPerSec: Math.round(n / total), records: n,
      p50Ms: round(pct(latencies, 0.5)), p99Ms: round(pct(latencies, 0.99)), maxMs: round(latencies.at(-1) ?? 0)}
  } finally {
    rmSync(dir, {recursive: true, force: true})
  }
}

const isMain = process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)
if (isMain) {
  const {values} = benchArgs(import.meta.url, () => parseArgs({options: {seconds: {type: 'string', default: '5'}, rate: {type: 'string', default: '50000'}, json: {type: 'boolean', default: false}, smoke: {type: 'boolean', default: false}}}))
  const r = values.smoke ? await benchRecords(0.2, 2000) : await benchRecords(Number(values.seconds), Number(values.rate))
  if (values.json) console.log(JSON.stringify(r))
  else {
    console.log(`offered ${r.offeredPerSec} records/s, committed ${r.committedPerSec} records/s (${r.records} records)`)
    console.log(`record -> committed block: p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, max ${r.maxMs} ms`)
  }
}
