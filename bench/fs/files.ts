/**
 * Small-file workloads, run by a separate node process with synchronous fs
 * calls (never by a process that serves a mount), timed inside the child so
 * node's start-up is not counted:
 *
 *  churn  create+write SIZE bytes+close N files in one new directory, then
 *         unlink them all (postmark-like: a pool that fills and drains)
 *  keep   create+write+close N files, PER to a directory, and leave them
 *  fsync  N times: create, write SIZE bytes, fsync (timed alone), close
 */
import {runNode} from '../../test/helpers/exec.js'

const CHILD = `
const fs = require('fs')
const [mode, dir, n, size, per] = [process.argv[1], process.argv[2], +process.argv[3], +process.argv[4], +process.argv[5]]
const buf = Buffer.alloc(size, 0x61)
const now = () => Number(process.hrtime.bigint()) / 1e6
const name = (i) => dir + '/' + (per > 0 ? 'd' + Math.floor(i / per) + '/' : '') + 'f' + i
fs.mkdirSync(dir, {recursive: true})
const out = {}
const t0 = now()
if (mode === 'fsync') {
  const lat = []
  for (let i = 0; i < n; i++) {
    const fd = fs.openSync(name(i), 'w')
    fs.writeSync(fd, buf)
    const s = now()
    fs.fsyncSync(fd)
    lat.push(now() - s)
    fs.closeSync(fd)
  }
  lat.sort((a, b) => a - b)
  const pct = (p) => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))]
  Object.assign(out, {p50Ms: pct(0.5), p99Ms: pct(0.99), maxMs: lat[lat.length - 1]})
} else {
  for (let i = 0; i < n; i++) {
    if (per > 0 && i % per === 0) fs.mkdirSync(dir + '/d' + (i / per))
    const fd = fs.openSync(name(i), 'w')
    fs.writeSync(fd, buf)
    fs.closeSync(fd)
  }
  out.createMs = now() - t0
  if (mode === 'churn') {
    const t1 = now()
    for (let i = 0; i < n; i++) fs.unlinkSync(name(i))
    out.unlinkMs = now() - t1
  }
}
out.totalMs = now() - t0
process.stdout.write(JSON.stringify(out))
`

export interface FilesResult {
  totalMs: number
  createMs?: number
  unlinkMs?: number
  p50Ms?: number
  p99Ms?: number
  maxMs?: number
}

export async function smallFiles(mode: 'churn' | 'keep' | 'fsync', dir: string, n: number, opts: {size: number; perDir?: number; timeoutMs: number}): Promise<FilesResult> {
  const res = await runNode(CHILD, [mode, dir, String(n), String(opts.size), String(opts.perDir ?? 0)], {timeoutMs: opts.timeoutMs})
  if (res.code !== 0) throw new Error(`small-file workload ${mode} in ${dir} failed (${res.code}): ${res.stderr.trim()}`)
  return JSON.parse(res.stdout) as FilesResult
}
