/**
 * The benchmarks. Side-by-side ones run every repetition on disk, bindfs and
 * PacioFS in turn (interleaved, so drift on a shared machine hits all three
 * alike) and report the median; the memory one runs on a fresh PacioFS mount
 * of its own; the ledger one runs bench/ledger.ts (the ledger engineer's) as a
 * child process.
 */
import {existsSync} from 'node:fs'
import {mkdir, rm} from 'node:fs/promises'
import {join} from 'node:path'
import {run} from '../../test/helpers/exec.js'
import {REPO} from '../../test/helpers/paciofs.js'
import {fio, type FioResult} from './fio.js'
import {smallFiles} from './files.js'
import {inodeReuseDelayMs} from './inode-reuse.js'
import {cpuSample, cpuUse, watchRss, type CpuUse} from './proc.js'
import {rowOf, type Row} from './report.js'
import {mountPacioAt, type Target, type TargetName} from './targets.js'

export const BENCHES = ['seqwrite', 'seqread', 'meta', 'randrw', 'fsync', 'memory', 'ledger'] as const
export type BenchName = (typeof BENCHES)[number]
/** Benchmarks that run on all three targets side by side. */
export const SIDE_BY_SIDE: readonly BenchName[] = ['seqwrite', 'seqread', 'meta', 'randrw', 'fsync']

export interface Sizes {
  /** repetitions of each side-by-side benchmark (interleaved across targets; the median is reported) */
  reps: number
  /** repetitions of the metadata benchmark (10,000 files take ~1 min on PacioFS today) */
  metaReps: number
  /** fio --size of the sequential write/read */
  seq: string
  /** fio --size of the legacy 1 KiB randrw job */
  randrw: string
  metaFiles: number
  fsyncFiles: number
  rssWrite: string
  rssFiles: number
  /** concurrent child processes creating the rssFiles */
  rssWriters: number
  /** per fio / child workload, ms */
  timeoutMs: number
}

export const FULL: Sizes = {reps: 3, metaReps: 1, seq: '1G', randrw: '10M', metaFiles: 10_000, fsyncFiles: 300, rssWrite: '1G', rssFiles: 100_000, rssWriters: 4, timeoutMs: 600_000}
export const SMOKE: Sizes = {reps: 1, metaReps: 1, seq: '8M', randrw: '512K', metaFiles: 200, fsyncFiles: 20, rssWrite: '8M', rssFiles: 500, rssWriters: 2, timeoutMs: 60_000}

export interface BenchContext {
  sizes: Sizes
  smoke: boolean
  root: string
  targets: Target[]
  selected: ReadonlySet<BenchName>
  log(line: string): void
  /** PacioFS server CPU use per benchmark (one entry per repetition). */
  cpu: Map<string, CpuUse[]>
  /** Exact commands run, per benchmark (for the README). */
  commands: Map<string, Set<string>>
  /** Anything else worth keeping in the JSON (fio warnings, RSS method, exit codes...). */
  notes: Record<string, unknown>
}

const MB = 1e6
const sync = () => run('sync', [], {timeoutMs: 120_000})

/** Runs `work` on one target; on PacioFS, also books the server's CPU use under `bench`. */
async function measured<T>(ctx: BenchContext, bench: string, t: Target, work: () => Promise<T>): Promise<T> {
  const pid = 'pid' in t ? (t.pid as number) : undefined
  const a = pid ? await cpuSample(pid) : undefined
  const out = await work()
  if (pid && a) {
    const use = cpuUse(a, await cpuSample(pid))
    ctx.cpu.set(bench, [...(ctx.cpu.get(bench) ?? []), use])
  }

  return out
}

function runsOf(ctx: BenchContext): Record<TargetName, number[]> {
  return Object.fromEntries(ctx.targets.map(t => [t.name, [] as number[]])) as Record<TargetName, number[]>
}

function noteFio(ctx: BenchContext, bench: string, t: Target, r: FioResult): void {
  // D: the target's directory for this repetition
  ctx.commands.set(bench, (ctx.commands.get(bench) ?? new Set()).add(r.command.replace(/--directory=\S+/, '--directory=D')))
  if (r.warnings) ctx.notes[`${bench}.${t.name}.fio-stderr`] = r.warnings
}

/** 1. fio sequential write (end_fsync) and then sequential read of the same file, buffered. */
export async function sequential(ctx: BenchContext): Promise<Row[]> {
  const writes = runsOf(ctx)
  const reads = runsOf(ctx)
  const size = ctx.sizes.seq
  for (let rep = 0; rep < ctx.sizes.reps; rep++) {
    const dirs = new Map(ctx.targets.map(t => [t.name, join(t.dir, `seq-${rep}`)]))
    for (const d of dirs.values()) await mkdir(d)
    if (ctx.selected.has('seqwrite')) {
      for (const t of ctx.targets) {
        await sync() // nothing of the previous target left to write back during this one
        const r = await measured(ctx, 'seqwrite', t, () => fio(dirs.get(t.name)!, ['--name=seqw', '--rw=write', '--bs=1M', `--size=${size}`, '--end_fsync=1'], ctx.sizes.timeoutMs))
        noteFio(ctx, 'seqwrite', t, r)
        writes[t.name].push(r.writeBytesPerSec / MB)
        ctx.log(`seqwrite ${t.name} rep ${rep + 1}: ${(r.writeBytesPerSec / MB).toFixed(0)} MB/s`)
      }
    }

    if (ctx.selected.has('seqread')) {
      for (const t of ctx.targets) {
        // Reads the file written above (without seqwrite, fio lays it out first, untimed). Buffered
        // (--direct=0), caches not dropped: the backing file is in the page cache for every target.
        const r = await measured(ctx, 'seqread', t, () => fio(dirs.get(t.name)!, ['--name=seqw', '--rw=read', '--bs=1M', `--size=${size}`, '--direct=0'], ctx.sizes.timeoutMs))
        noteFio(ctx, 'seqread', t, r)
        reads[t.name].push(r.readBytesPerSec / MB)
        ctx.log(`seqread ${t.name} rep ${rep + 1}: ${(r.readBytesPerSec / MB).toFixed(0)} MB/s`)
      }
    }

    for (const d of dirs.values()) await rm(d, {recursive: true, force: true})
  }

  const rows: Row[] = []
  if (ctx.selected.has('seqwrite')) rows.push(rowOf({bench: 'seqwrite', metric: `fio write ${size}, bs=1M, end_fsync=1`, unit: 'MB/s', better: 'higher', goal: {kind: 'vs-bindfs', min: 0.8}}, writes))
  if (ctx.selected.has('seqread')) rows.push(rowOf({bench: 'seqread', metric: `fio read ${size}, bs=1M, buffered, warm backing cache`, unit: 'MB/s', better: 'higher', goal: {kind: 'vs-bindfs', min: 0.9}}, reads))
  return rows
}

/** 2. create + write 4 KiB + close N files, then unlink them, from a child process. */
export async function metadata(ctx: BenchContext): Promise<Row[]> {
  const n = ctx.sizes.metaFiles
  const total = runsOf(ctx)
  const create = runsOf(ctx)
  const unlink = runsOf(ctx)
  // on ext4 without a journal, the inodes one target unlinks slow down the next target's
  // creates for a minute (inode-reuse.ts): each target starts once the previous one's are reusable
  const reuseMs = ctx.smoke ? 0 : inodeReuseDelayMs(ctx.root)
  if (reuseMs > 0) ctx.notes['meta.inode-reuse-wait-ms'] = reuseMs
  let lastUnlinks = 0
  for (let rep = 0; rep < ctx.sizes.metaReps; rep++) {
    for (const t of ctx.targets) {
      const wait = lastUnlinks + reuseMs - Date.now()
      if (lastUnlinks > 0 && wait > 0) {
        ctx.log(`meta: waiting ${Math.ceil(wait / 1000)} s until the inodes the previous target freed can be reused (ext4 without a journal)`)
        await new Promise(resolve => setTimeout(resolve, wait))
      }

      const dir = join(t.dir, `meta-${rep}`)
      const r = await measured(ctx, 'meta', t, () => smallFiles('churn', dir, n, {size: 4096, timeoutMs: ctx.sizes.timeoutMs}))
      await rm(dir, {recursive: true, force: true})
      if (reuseMs > 0) {
        await sync() // their inode table blocks written back: 60 s, not 360
        lastUnlinks = Date.now()
      }

      total[t.name].push(n / (r.totalMs / 1000))
      create[t.name].push(n / (r.createMs! / 1000))
      unlink[t.name].push(n / (r.unlinkMs! / 1000))
      ctx.log(`meta ${t.name} rep ${rep + 1}: ${(n / (r.totalMs / 1000)).toFixed(0)} files/s`)
    }
  }

  return [
    rowOf({bench: 'meta', metric: `${n.toLocaleString('en-US')} files: create+write 4 KiB+close, then unlink`, unit: 'files/s', better: 'higher', goal: {kind: 'vs-bindfs', min: 0.5}}, total),
    rowOf({bench: 'meta', metric: 'of which create+write+close', unit: 'files/s', better: 'higher'}, create),
    rowOf({bench: 'meta', metric: 'of which unlink', unit: 'files/s', better: 'higher'}, unlink),
  ]
}

/** 3. The Python prototype's benchmark: fio 1 KiB random read/write. */
export async function randrw(ctx: BenchContext): Promise<Row[]> {
  const iops = runsOf(ctx)
  for (let rep = 0; rep < ctx.sizes.reps; rep++) {
    for (const t of ctx.targets) {
      const dir = join(t.dir, `randrw-${rep}`)
      await mkdir(dir)
      const r = await measured(ctx, 'randrw', t, () => fio(dir, ['--name=test', '--bs=1K', `--size=${ctx.sizes.randrw}`, '--readwrite=randrw'], ctx.sizes.timeoutMs))
      noteFio(ctx, 'randrw', t, r)
      await rm(dir, {recursive: true, force: true})
      iops[t.name].push(r.readIops + r.writeIops)
      ctx.log(`randrw ${t.name} rep ${rep + 1}: ${(r.readIops + r.writeIops).toFixed(0)} IOPS`)
    }
  }

  return [rowOf({bench: 'randrw', metric: `fio randrw bs=1K size=${ctx.sizes.randrw}, read+write`, unit: 'IOPS', better: 'higher'}, iops)]
}

/** Extra: fsync latency of a fresh 4 KiB file; on PacioFS it includes the commit of its records on the ledger. */
export async function fsyncLatency(ctx: BenchContext): Promise<Row[]> {
  const n = ctx.sizes.fsyncFiles
  const p50 = runsOf(ctx)
  const p99 = runsOf(ctx)
  for (let rep = 0; rep < ctx.sizes.reps; rep++) {
    for (const t of ctx.targets) {
      const dir = join(t.dir, `fsync-${rep}`)
      const r = await measured(ctx, 'fsync', t, () => smallFiles('fsync', dir, n, {size: 4096, timeoutMs: ctx.sizes.timeoutMs}))
      await rm(dir, {recursive: true, force: true})
      p50[t.name].push(r.p50Ms!)
      p99[t.name].push(r.p99Ms!)
      ctx.log(`fsync ${t.name} rep ${rep + 1}: p50 ${r.p50Ms!.toFixed(2)} ms, p99 ${r.p99Ms!.toFixed(2)} ms`)
    }
  }

  return [
    rowOf({bench: 'fsync', metric: `${n} x (create, write 4 KiB, fsync, close): fsync p50`, unit: 'ms', better: 'lower'}, p50),
    rowOf({bench: 'fsync', metric: 'fsync p99 (PacioFS: op to committed block)', unit: 'ms', better: 'lower'}, p99),
  ]
}

/** 4. Peak RSS of the PacioFS server while writing one big file, and while creating many small files. */
export async function memory(ctx: BenchContext): Promise<Row[]> {
  const server = await mountPacioAt(ctx.root, 'memory')
  let stopped = false
  try {
    const idle = await watchRss(server.pid).then(w => w.stop())
    let w = await watchRss(server.pid)
    await mkdir(join(server.dir, 'big'))
    const r = await fio(join(server.dir, 'big'), ['--name=seqw', '--rw=write', '--bs=1M', `--size=${ctx.sizes.rssWrite}`, '--end_fsync=1'], ctx.sizes.timeoutMs)
    ctx.commands.set('memory', new Set([r.command.replace(/--directory=\S+/, '--directory=D')]))
    const big = await w.stop()
    ctx.log(`memory: peak RSS ${big.peakMB} MB writing ${ctx.sizes.rssWrite}`)

    w = await watchRss(server.pid)
    const n = ctx.sizes.rssFiles
    const p = ctx.sizes.rssWriters
    const t1 = performance.now()
    await Promise.all(Array.from({length: p}, (_, i) =>
      smallFiles('keep', join(server.dir, `many-${i}`), Math.ceil(n / p), {size: 4096, perDir: 1000, timeoutMs: ctx.sizes.timeoutMs})))
    const filesPerSec = n / ((performance.now() - t1) / 1000)
    const many = await w.stop()
    ctx.log(`memory: peak RSS ${many.peakMB} MB creating ${n} files (${filesPerSec.toFixed(0)} files/s)`)

    const t0 = performance.now()
    const code = await server.mount.stop()
    stopped = true
    const stopS = (performance.now() - t0) / 1000
    ctx.notes['memory.rss'] = {idle, big, many, method: big.method}
    if (code !== 0) throw new Error(`paciofs mount (memory) exited ${code}:\n${server.mount.output()}`)
    const only = (x: number) => ({paciofs: [x]})
    const count = n.toLocaleString('en-US')
    return [
      rowOf({bench: 'memory', metric: 'RSS of the idle mount', unit: 'MB', better: 'lower'}, only(idle.peakMB)),
      rowOf({bench: 'memory', metric: `peak RSS writing ${ctx.sizes.rssWrite} (fio seqwrite)`, unit: 'MB', better: 'lower', goal: {kind: 'at-most', max: 200}}, only(big.peakMB)),
      rowOf({bench: 'memory', metric: `peak RSS creating ${count} files of 4 KiB (kept), ${p} processes`, unit: 'MB', better: 'lower', goal: {kind: 'at-most', max: 200}}, only(many.peakMB)),
      rowOf({bench: 'memory', metric: `creating ${count} files, 1,000 per directory`, unit: 'files/s', better: 'higher'}, only(filesPerSec)),
      rowOf({bench: 'memory', metric: 'then SIGTERM to exit (commit all, unmount)', unit: 's', better: 'lower'}, only(stopS)),
    ]
  } finally {
    if (!stopped) await server.mount.kill()
  }
}

/**
 * 5. bench/ledger.ts (if present), both writer placements, twice: closed loop
 * (the most it commits: records/s) and open loop at the target's 50,000
 * records/s offered (append p99 at that load; also what it committed).
 */
export async function ledger(ctx: BenchContext): Promise<Row[]> {
  const script = join(REPO, 'bench', 'ledger.ts')
  if (!existsSync(script)) {
    ctx.notes['ledger'] = 'bench/ledger.ts is absent: no ledger numbers'
    return [{bench: 'ledger', metric: 'skipped: bench/ledger.ts absent', unit: '', better: 'higher', values: {}}]
  }

  type Result = {writer: string; offeredPerSec: number; payloadsPerSec: number; appendP99Ms: number; bytesWrittenPerPayload: number | null; cpuUsPerPayload: number}
  const runOnce = async (extra: string[]) => {
    const args = ['--import', 'tsx', 'bench/ledger.ts', '--json', ...extra, ...(ctx.smoke ? ['--smoke'] : [])]
    ctx.commands.set('ledger', new Set([...(ctx.commands.get('ledger') ?? []), `node ${args.join(' ')}`]))
    const res = await run(process.execPath, args, {cwd: REPO, timeoutMs: ctx.sizes.timeoutMs})
    if (res.code !== 0) throw new Error(`bench/ledger.ts failed (${res.code}): ${res.stderr.trim()}`)
    return JSON.parse(res.stdout.trim().split('\n').at(-1)!) as {options: unknown; results: Result[]}
  }
  const closed = await runOnce([])
  const open = await runOnce(['--rate', '50000'])
  ctx.notes['ledger'] = {closedLoop: closed, openLoop: open}
  const rows: Row[] = []
  const which = (w: string) => (w === 'worker' ? 'worker writer, the default' : `${w} writer`)
  for (const r of closed.results) {
    rows.push(
      rowOf({bench: 'ledger', metric: `records/s, closed loop (${which(r.writer)})`, unit: 'records/s', better: 'higher', goal: {kind: 'at-least', min: 50_000}}, {paciofs: [r.payloadsPerSec]}),
      rowOf({bench: 'ledger', metric: `per record: CPU, all threads (${which(r.writer)})`, unit: 'µs', better: 'lower'}, {paciofs: [r.cpuUsPerPayload]}),
      ...(r.bytesWrittenPerPayload === null ? [] : [rowOf({bench: 'ledger', metric: `per record: bytes written (${which(r.writer)})`, unit: 'B', better: 'lower'}, {paciofs: [r.bytesWrittenPerPayload]})]),
    )
  }
  for (const r of open.results) {
    rows.push(
      rowOf({bench: 'ledger', metric: `append p99 at ${r.offeredPerSec} records/s offered (${which(r.writer)})`, unit: 'ms', better: 'lower', goal: {kind: 'at-most', max: 100}}, {paciofs: [r.appendP99Ms]}),
      rowOf({bench: 'ledger', metric: `records/s committed meanwhile (${which(r.writer)})`, unit: 'records/s', better: 'higher'}, {paciofs: [r.payloadsPerSec]}),
    )
  }

  return rows
}
