/**
 * What keeping every version costs.
 *
 *   node --import tsx bench/history.ts [--size-mib 1024] [--rewrites 100] [--reads 3] [--json] [--smoke]
 *
 * Side by side in one run, on real mounts (needs root, FUSE and fio):
 *  1. fio sequential write of --size-mib (bs=1M, end_fsync=1) with history on
 *     and with `mount --no-history`: fio's wall time, and the time until the
 *     mount has stopped (background captures included);
 *  2. rewriting 1 MiB at a random (unaligned) offset inside that file
 *     --rewrites times, each an open/write/close: the history bytes this adds;
 *  3. reading that last version back, once the mount is idle, --reads times
 *     interleaved (the first round also warms the page cache for all; the
 *     medians are reported): `cp` of the current file through the mount (the
 *     baseline), `paciofs cat --at <head> --to` (a process of its own: its
 *     start-up counts), and `cp` from the mount's `.paciofs-history/<head>/`
 *     view; then once more from the view after a remount, whose first open
 *     reads the whole version to prove its chunk list.
 * `--smoke` runs a tiny version (used by the tests so this file cannot rot).
 */
import fs from 'node:fs'
import os from 'node:os'
import {join} from 'node:path'
import {parseArgs} from 'node:util'
import {runOk} from '../test/helpers/exec.js'
import {mountPacio, paciofs, scratch} from '../test/helpers/paciofs.js'
import {benchArgs} from './args.js'

const MiB = 1024 * 1024
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d

/** CPU time (clock ticks) a process has used so far. */
function cpuTicks(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return Number(fields[11]) + Number(fields[12]) // utime + stime
}

/** Waits until a process has used (almost) no CPU for a whole second: its background work is done. */
async function idle(pid: number): Promise<void> {
  for (let last = cpuTicks(pid); ;) {
    await new Promise(r => setTimeout(r, 1000))
    const now = cpuTicks(pid)
    if (now - last <= 5) return
    last = now
  }
}

async function timed<T>(work: () => Promise<T>): Promise<{ms: number; value: T}> {
  const t = performance.now()
  const value = await work()
  return {ms: performance.now() - t, value}
}

async function fioRun(sizeMiB: number, history: boolean) {
  const area = await scratch(`bench-history-${history ? 'on' : 'off'}`)
  try {
    const mount = await mountPacio(area.volume, area.mnt, {extraArgs: history ? [] : ['--no-history']})
    let fioMs = 0
    try {
      fioMs = (await timed(() => runOk('fio', ['--name=seq', '--bs=1M', `--size=${sizeMiB}M`, '--readwrite=write', '--end_fsync=1', `--directory=${area.mnt}`,
        '--output-format=json'], {timeoutMs: 1_800_000}))).ms
    } finally {
      const stop = await timed(() => mount.stop())
      var stopMs = stop.ms // eslint-disable-line no-var
    }

    return {fioMs, totalMs: fioMs + stopMs}
  } finally {
    await area.dispose()
  }
}

async function stats(volume: string): Promise<{storedBytes: number; logicalBytes: number; savedBytes: number}> {
  const r = await paciofs(['history', '--stats', '--json', '--volume', volume])
  if (r.code !== 0) throw new Error(r.stderr)
  return JSON.parse(r.stdout)
}

async function rewriteAndRead(sizeMiB: number, rewrites: number, reads: number) {
  const area = await scratch('bench-history-rewrite')
  try {
    let mount = await mountPacio(area.volume, area.mnt)
    const file = join(area.mnt, 'big.bin')
    try {
      await runOk('fio', ['--name=fill', '--bs=1M', `--size=${sizeMiB}M`, '--readwrite=write', '--end_fsync=1', `--filename=${file}`, '--output-format=json'], {timeoutMs: 1_800_000})
      await runOk('sync', [])
      // the fill's version is captured in the background: wait until no capture is owed
      const pending = join(area.volume, '.paciofs', 'history', 'pending')
      while (fs.existsSync(pending) && fs.readdirSync(pending).length > 0) await new Promise(r => setTimeout(r, 100))
      const before = await stats(area.volume)
      const rw = await timed(() => runOk(process.execPath, ['-e', `
        const fs = require('fs'), crypto = require('crypto'), [file, n, size] = process.argv.slice(1).map((v, i) => i ? Number(v) : v)
        for (let i = 0; i < n; i++) {
          const fd = fs.openSync(file, 'r+')
          fs.writeSync(fd, crypto.randomBytes(1 << 20), 0, 1 << 20, Math.floor(Math.random() * (size - (1 << 20))))
          fs.closeSync(fd)
        }`, file, String(rewrites), String(sizeMiB * MiB)], {timeoutMs: 3_600_000}))
      // the rewrites' versions are captured in the background too: let that end before timing reads, so the
      // current file's read does not share the machine with it
      while (fs.existsSync(pending) && fs.readdirSync(pending).length > 0) await new Promise(r => setTimeout(r, 100))
      await idle(mount.child.pid!) // and the digests of the rewritten file (each random rewrite re-reads it whole)
      const after = await stats(area.volume)
      const head = JSON.parse((await paciofs(['history', '/big.bin', '--json', '--volume', area.volume])).stdout).head as number
      const view = (mnt: string) => join(mnt, '.paciofs-history', String(head), 'big.bin')
      const out = (name: string) => join(area.dir, name)

      // the current file through the mount, the same version from `paciofs cat` and from the history view
      const cur: number[] = []
      const past: number[] = []
      const hist: number[] = []
      for (let r = 0; r < reads; r++) {
        cur.push((await timed(() => runOk('cp', [file, out('current.out')], {timeoutMs: 600_000}))).ms)
        past.push((await timed(async () => {
          const res = await paciofs(['cat', '/big.bin', '--at', String(head), '--volume', area.volume, '--to', out('past.out')], {timeoutMs: 600_000})
          if (res.code !== 0) throw new Error(res.stderr)
        })).ms)
        hist.push((await timed(() => runOk('cp', [view(area.mnt), out('view.out')], {timeoutMs: 600_000}))).ms)
        for (const f of ['past.out', 'view.out']) {
          if (!(await sameFile(out('current.out'), out(f)))) throw new Error(`${f}: other bytes than the current file`)
        }
      }

      // after a remount the view knows no chunk list: its first open reads the whole version once to prove it
      if ((await mount.stop()) !== 0) throw new Error(`the mount did not stop cleanly:\n${mount.output()}`)
      mount = await mountPacio(area.volume, area.mnt)
      const cold = (await timed(() => runOk('cp', [view(area.mnt), out('view.out')], {timeoutMs: 600_000}))).ms
      if (!(await sameFile(out('current.out'), out('view.out')))) throw new Error('view after remount: other bytes than the current file')
      const mibps = (ms: number) => round(sizeMiB / (ms / 1000), 0)
      return {
        rewrites, rewriteMs: rw.ms,
        historyAddedMiB: round((after.storedBytes - before.storedBytes) / MiB),
        reads,
        readCurrentMiBps: mibps(median(cur)),
        readPastMiBps: mibps(median(past)),
        readViewMiBps: mibps(median(hist)),
        readViewColdMiBps: mibps(cold),
        readRuns: {currentMs: cur.map(x => round(x, 0)), catMs: past.map(x => round(x, 0)), viewMs: hist.map(x => round(x, 0)), viewAfterRemountMs: round(cold, 0)},
      }
    } finally {
      await mount.stop()
    }
  } finally {
    await area.dispose()
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

/** Compares two files in 4 MiB pieces (1 GiB outputs are not read into memory whole). */
async function sameFile(a: string, b: string): Promise<boolean> {
  const [fa, fb] = await Promise.all([fs.promises.open(a), fs.promises.open(b)])
  try {
    const [ba, bb] = [Buffer.alloc(4 * MiB), Buffer.alloc(4 * MiB)]
    for (let pos = 0; ; pos += 4 * MiB) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, ba.length, pos), fb.read(bb, 0, bb.length, pos)])
      if (ra.bytesRead !== rb.bytesRead || !ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false
      if (ra.bytesRead === 0) return true
    }
  } finally {
    await Promise.all([fa.close(), fb.close()])
  }
}

async function main() {
  const {values} = benchArgs(import.meta.url, () => parseArgs({options: {
    'size-mib': {type: 'string', default: '1024'}, rewrites: {type: 'string', default: '100'}, reads: {type: 'string', default: '3'}, json: {type: 'boolean', default: false}, smoke: {type: 'boolean', default: false},
  }}))
  const sizeMiB = values.smoke ? 8 : Number(values['size-mib'])
  const rewrites = values.smoke ? 2 : Number(values.rewrites)
  const reads = values.smoke ? 1 : Number(values.reads)
  const loadStart = os.loadavg()[0]
  const off = await fioRun(sizeMiB, false)
  const on = await fioRun(sizeMiB, true)
  const rw = await rewriteAndRead(sizeMiB, rewrites, reads)
  const result = {
    bench: 'history', sizeMiB,
    fio: {offMs: round(off.fioMs, 0), onMs: round(on.fioMs, 0), ratio: round(on.fioMs / off.fioMs),
      offUntilStoppedMs: round(off.totalMs, 0), onUntilStoppedMs: round(on.totalMs, 0), ratioUntilStopped: round(on.totalMs / off.totalMs)},
    ...rw,
    readRatio: round(rw.readPastMiBps / rw.readCurrentMiBps),
    readViewRatio: round(rw.readViewMiBps / rw.readCurrentMiBps),
    readViewColdRatio: round(rw.readViewColdMiBps / rw.readCurrentMiBps),
    load: {start: round(loadStart), end: round(os.loadavg()[0])},
  }
  if (values.json) console.log(JSON.stringify(result))
  else console.log(JSON.stringify(result, null, 2))
}

await main()
