/**
 * What keeping every version costs.
 *
 *   node --import tsx bench/history.ts [--size-mib 1024] [--rewrites 100] [--json] [--smoke]
 *
 * Side by side in one run, on real mounts (needs root, FUSE and fio):
 *  1. fio sequential write of --size-mib (bs=1M, end_fsync=1) with history on
 *     and with `mount --no-history`: fio's wall time, and the time until the
 *     mount has stopped (background captures included);
 *  2. rewriting 1 MiB at a random (unaligned) offset inside that file
 *     --rewrites times, each an open/write/close: the history bytes this adds;
 *  3. reading the file back: `paciofs cat --at <head> --to` against `cp` of the
 *     current file from the mount.
 * `--smoke` runs a tiny version (used by the tests so this file cannot rot).
 */
import fs from 'node:fs'
import {join} from 'node:path'
import {parseArgs} from 'node:util'
import {runOk} from '../test/helpers/exec.js'
import {mountPacio, paciofs, scratch} from '../test/helpers/paciofs.js'

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

async function rewriteAndRead(sizeMiB: number, rewrites: number) {
  const area = await scratch('bench-history-rewrite')
  try {
    const mount = await mountPacio(area.volume, area.mnt)
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

      // read the current file through the mount, and the same version from the history
      const cur = await timed(() => runOk('cp', [file, join(area.dir, 'current.out')], {timeoutMs: 600_000}))
      const past = await timed(async () => {
        const r = await paciofs(['cat', '/big.bin', '--volume', area.volume, '--to', join(area.dir, 'past.out')], {timeoutMs: 600_000})
        if (r.code !== 0) throw new Error(r.stderr)
      })
      const same = fs.readFileSync(join(area.dir, 'current.out')).equals(fs.readFileSync(join(area.dir, 'past.out')))
      if (!same) throw new Error('cat returned other bytes than the current file')
      return {
        rewrites, rewriteMs: rw.ms,
        historyAddedMiB: round((after.storedBytes - before.storedBytes) / MiB),
        readCurrentMiBps: round(sizeMiB / (cur.ms / 1000), 0),
        readPastMiBps: round(sizeMiB / (past.ms / 1000), 0),
      }
    } finally {
      await mount.stop()
    }
  } finally {
    await area.dispose()
  }
}

async function main() {
  const {values} = parseArgs({options: {
    'size-mib': {type: 'string', default: '1024'}, rewrites: {type: 'string', default: '100'}, json: {type: 'boolean', default: false}, smoke: {type: 'boolean', default: false},
  }})
  const sizeMiB = values.smoke ? 8 : Number(values['size-mib'])
  const rewrites = values.smoke ? 2 : Number(values.rewrites)
  const off = await fioRun(sizeMiB, false)
  const on = await fioRun(sizeMiB, true)
  const rw = await rewriteAndRead(sizeMiB, rewrites)
  const result = {
    bench: 'history', sizeMiB,
    fio: {offMs: round(off.fioMs, 0), onMs: round(on.fioMs, 0), ratio: round(on.fioMs / off.fioMs),
      offUntilStoppedMs: round(off.totalMs, 0), onUntilStoppedMs: round(on.totalMs, 0), ratioUntilStopped: round(on.totalMs / off.totalMs)},
    ...rw,
    readRatio: round(rw.readPastMiBps / rw.readCurrentMiBps),
  }
  if (values.json) console.log(JSON.stringify(result))
  else console.log(JSON.stringify(result, null, 2))
}

await main()
