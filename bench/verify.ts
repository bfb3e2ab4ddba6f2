/**
 * `paciofs verify` against sha256sum, side by side in one run.
 *
 *   node --import tsx bench/verify.ts [--smoke] [--json out.json] [--reps N]
 *        [--only hashing,many,history] [--dir PARENT] [--keep] [--profile DIR]
 *
 * Volumes are filled through LocalVolume (the records a mount would write,
 * without FUSE), from a fixed seed, one child process per volume, all at once:
 *
 *  hashing  2 GiB of mixed sizes (4 x 256 MiB, 1-8 MiB, 2,000 x 4-64 KiB):
 *           `paciofs verify` vs `find | xargs -0 -P2 sha256sum` on the backing
 *           dir (state dir excluded); target verify <= 1.25x.
 *  many     100,000 files of 1-4 KiB in 300 dirs: the same comparison, target
 *           <= 2x, and the verify process's peak RSS < 300 MB.
 *  history  1,000 files of 16 KiB, each rewritten 100 times (A: ~200,000
 *           records), vs the same final tree written once (B): target
 *           verify(A) <= 1.2x verify(B). (1,000 rather than 2,000 files: A's
 *           fill is the longest part of the run, and the ratio depends on the
 *           records per file, not on the number of files.)
 *
 * verify runs twice per round: `--full` (every block and record: what a first
 * verify or a new auditor pays) and plain, which uses the verified index the
 * previous run left in the cache (PACIOFS_CACHE_DIR, kept inside the bench's
 * temp dir) and checks only newer history. The sha256sum pipeline exactly as
 * specified hands all paths of a small tree to one sha256sum (xargs packs
 * 128 KiB of arguments into one command: one core), so it also runs with
 * `-n <files/64>` (both cores); verify is judged against the faster of the two.
 *
 * Before timing, every file of each volume, its state dir included, is read
 * once (the page cache is then warm for all sides), and the volume is
 * verified once in-process with src/audit to time verify's phases. Then
 * `reps` rounds run interleaved and medians are reported. Every verify must
 * find its volume clean. `--smoke` runs everything once with tiny sizes (the
 * test suite does, so this file cannot rot); its numbers are not judged.
 * `--keep` leaves the volumes in place; `--profile DIR` also writes a
 * `node --cpu-prof` profile of one verify --full per volume. Needs dist/
 * built, GNU time, find, xargs and sha256sum; never mounts anything.
 */
import {spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {createCipheriv, createHash} from 'node:crypto'
import {constants as C, existsSync} from 'node:fs'
import {mkdir, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {cpus, loadavg, release, tmpdir} from 'node:os'
import {join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'
import {loadOrCreateIdentity} from '../src/app/identity.js'
import {openVolumeStack} from '../src/app/stack.js'
import {BIN, NODE_ARGS} from '../test/helpers/paciofs.js'
import {verifyVolume} from '../src/audit/verify.js'
import type {LocalVolume} from '../src/volume/local-volume.js'
import {benchArgs} from './args.js'

const SELF = fileURLToPath(import.meta.url)
const REPO = resolve(SELF, '..', '..')
const GNU_TIME = '/usr/bin/time'
const KiB = 1024
const MiB = 1024 * KiB
const CALLER = {uid: 0, gid: 0, pid: 1}
const SEED = 20261126
const CHUNK = MiB

const out = (s = '') => process.stdout.write(`${s}\n`)
const say = (s: string) => process.stderr.write(`[bench:verify] ${s}\n`)
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`

// ---- sizes -----------------------------------------------------------------

export interface Sizes {
  reps: number
  hashing: {total: number; big: number; bigSize: number; medium: [number, number]; small: number; smallSize: [number, number]; dirs: number}
  many: {files: number; size: [number, number]; dirs: number}
  history: {files: number; size: number; rewrites: number}
}

const FULL: Sizes = {
  reps: 3,
  hashing: {total: 2048 * MiB, big: 4, bigSize: 256 * MiB, medium: [1 * MiB, 8 * MiB], small: 2000, smallSize: [4 * KiB, 64 * KiB], dirs: 20},
  many: {files: 100_000, size: [1 * KiB, 4 * KiB], dirs: 300},
  history: {files: 1000, size: 16 * KiB, rewrites: 100},
}

const SMOKE: Sizes = {
  reps: 1,
  hashing: {total: 4 * MiB, big: 1, bigSize: 2 * MiB, medium: [128 * KiB, 512 * KiB], small: 20, smallSize: [1 * KiB, 8 * KiB], dirs: 3},
  many: {files: 300, size: [1 * KiB, 4 * KiB], dirs: 3},
  history: {files: 20, size: 4 * KiB, rewrites: 3},
}

export type Scenario = 'hashing' | 'many' | 'history'
const SCENARIOS: Scenario[] = ['hashing', 'many', 'history']

// ---- the volumes, with deterministic content ---------------------------------

/** mulberry32: a small seeded PRNG for sizes. */
function rng(seed: number): (lo: number, hi: number) => number {
  let a = seed >>> 0
  return (lo, hi) => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    const u = ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
    return lo + Math.floor(u * (hi - lo + 1))
  }
}

const ZEROS = Buffer.alloc(CHUNK)

/** The bytes of file `id`: an AES-CTR keystream, so incompressible, distinct per id and the same in every run. */
function contentOf(id: string): (n: number) => Buffer {
  const key = createHash('sha256').update(`paciofs-bench-verify:${SEED}`).digest().subarray(0, 16)
  const iv = createHash('sha256').update(id).digest().subarray(0, 16)
  const c = createCipheriv('aes-128-ctr', key, iv)
  return n => c.update(ZEROS.subarray(0, n))
}

interface FileSpec {
  path: string
  size: number
}

const pad = (i: number, w: number) => String(i).padStart(w, '0')

/** `big` files of bigSize, the small files, then medium files up to `total` bytes. */
function hashingTree(s: Sizes['hashing']): FileSpec[] {
  const r = rng(SEED)
  const dir = (i: number) => `/d${pad(i % s.dirs, 2)}`
  const files: FileSpec[] = []
  for (let i = 0; i < s.big; i++) files.push({path: `/big${i}.bin`, size: s.bigSize})
  for (let i = 0; i < s.small; i++) files.push({path: `${dir(i)}/s${pad(i, 5)}.dat`, size: r(s.smallSize[0], s.smallSize[1])})
  let left = s.total - files.reduce((a, f) => a + f.size, 0)
  for (let i = 0; left >= s.medium[0]; i++) {
    const size = Math.min(left, r(s.medium[0], s.medium[1]))
    files.push({path: `${dir(i)}/m${pad(i, 4)}.dat`, size})
    left -= size
  }

  return files
}

function manyTree(s: Sizes['many']): FileSpec[] {
  const r = rng(SEED + 1)
  return Array.from({length: s.files}, (_, i) => ({path: `/d${pad(i % s.dirs, 3)}/f${pad(i, 6)}`, size: r(s.size[0], s.size[1])}))
}

function historyTree(s: Sizes['history']): FileSpec[] {
  return Array.from({length: s.files}, (_, i) => ({path: `/h${pad(i % 20, 2)}/f${pad(i, 5)}`, size: s.size}))
}

interface VolumeSpec {
  scenario: Scenario
  files(s: Sizes): FileSpec[]
  /** times every file is opened with O_TRUNC and written again after its creation */
  rewrites(s: Sizes): number
  /** the content version the files end with (version `rewrites` when there are rewrites) */
  finalVersion(s: Sizes): number
  /** files written at once */
  width: number
}

const VOLUMES: Record<string, VolumeSpec> = {
  hashing: {scenario: 'hashing', files: s => hashingTree(s.hashing), rewrites: () => 0, finalVersion: () => 0, width: 4},
  many: {scenario: 'many', files: s => manyTree(s.many), rewrites: () => 0, finalVersion: () => 0, width: 256},
  'history-A': {scenario: 'history', files: s => historyTree(s.history), rewrites: s => s.history.rewrites, finalVersion: s => s.history.rewrites, width: 256},
  'history-B': {scenario: 'history', files: s => historyTree(s.history), rewrites: () => 0, finalVersion: s => s.history.rewrites, width: 256},
}

async function putFile(v: LocalVolume, path: string, size: number, id: string, rewrite: boolean): Promise<void> {
  const fh = rewrite ? await v.open(path, C.O_WRONLY | C.O_TRUNC, CALLER) : await v.create(path, 0o644, C.O_WRONLY | C.O_CREAT | C.O_EXCL, CALLER)
  try {
    const next = contentOf(id)
    for (let pos = 0; pos < size;) {
      const n = Math.min(CHUNK, size - pos)
      const buf = next(n)
      for (let off = 0; off < n;) off += await v.write(path, fh, buf.subarray(off), n - off, pos + off, CALLER)
      pos += n
    }
  } finally {
    await v.release(path, fh)
  }
}

async function pool<T>(items: T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({length: Math.min(width, items.length)}, async () => {
    for (let i = next++; i < items.length; i = next++) await work(items[i])
  }))
}

export interface Filled {
  files: number
  bytes: number
  records: number
  fillSeconds: number
}

/** Creates the volume `name` in `dir` through LocalVolume, in this process. */
async function fillVolume(name: string, dir: string, sizes: Sizes): Promise<Filled> {
  const t0 = performance.now()
  const spec = VOLUMES[name]
  const files = spec.files(sizes)
  const rewrites = spec.rewrites(sizes)
  const stack = await openVolumeStack(dir, {create: true, purpose: 'bench/verify fill'})
  try {
    const v = stack.volume
    const dirs = [...new Set(files.map(f => f.path.slice(0, f.path.lastIndexOf('/'))).filter(Boolean))].sort()
    for (const d of dirs) await v.mkdir(d, 0o755, CALLER)
    const first = rewrites > 0 ? 0 : spec.finalVersion(sizes)
    await pool(files, spec.width, f => putFile(v, f.path, f.size, `${f.path}#${first}`, false))
    for (let round = 1; round <= rewrites; round++) await pool(files, spec.width, f => putFile(v, f.path, f.size, `${f.path}#${round}`, true))
    await v.sync()
    const records = stack.recordCount()
    return {files: files.length, bytes: files.reduce((a, f) => a + f.size, 0), records, fillSeconds: Math.round((performance.now() - t0) / 100) / 10}
  } finally {
    await stack.close()
  }
}

// ---- running and timing commands -----------------------------------------

const children = new Set<ChildProcess>()

interface Ran {
  ms: number
  code: number | null
  stdout: string
  stderr: string
}

/** Runs a command in its own process group (so an interrupt can end all of it), timed from spawn to exit. */
function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    const child = spawn(cmd, args, {cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true})
    children.add(child)
    let stdout = ''
    let stderr = ''
    child.stdout!.on('data', d => (stdout += d))
    child.stderr!.on('data', d => (stderr += d))
    child.on('error', error => {
      children.delete(child)
      reject(error)
    })
    child.on('close', code => {
      children.delete(child)
      resolve({ms: performance.now() - t0, code, stdout, stderr})
    })
  })
}

function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {...process.env, LC_ALL: 'C.UTF-8'}
  delete env.NODE_OPTIONS // no tsx loader in the measured process
  return env
}

/** Fills volume `name` in a child process (this file with --fill), so that all volumes fill at once. */
async function fillInChild(name: string, dir: string, smoke: boolean): Promise<Filled> {
  const r = await timed(process.execPath, ['--import', 'tsx', SELF, '--fill', name, '--into', dir, ...(smoke ? ['--smoke'] : [])])
  if (r.code !== 0) throw new Error(`filling ${name} failed (exit ${r.code}):\n${r.stderr.slice(-2000)}`)
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Filled
}

interface VerifyRun {
  /** wall time of the process, node and oclif start-up included */
  ms: number
  /** verify's own figure: opening the volume to the report */
  innerMs: number
  peakRssMB: number
}

/**
 * One `paciofs verify --json` under GNU time (for the peak RSS); the volume
 * must be clean. `full`: --full, every block and record; otherwise the
 * verified index an earlier run left in the cache is used and only newer
 * history is checked — which must then be what happened.
 */
async function runVerify(volume: string, full: boolean, extraNode: string[] = []): Promise<VerifyRun> {
  const node = [...extraNode, ...NODE_ARGS, BIN, 'verify', '--volume', volume, '--json', ...(full ? ['--full'] : [])]
  const r = await timed(GNU_TIME, ['-v', process.execPath, ...node], childEnv())
  let report: {status?: string; incremental?: unknown; ms?: number} = {}
  try {
    report = JSON.parse(r.stdout)
  } catch { /* reported below */ }

  if (r.code !== 0 || report.status !== 'clean') {
    throw new Error(`paciofs verify ${volume} exited ${r.code}, status ${report.status}:\n${r.stderr.slice(-2000)}\n${r.stdout.slice(0, 2000)}`)
  }

  if (full === Boolean(report.incremental)) {
    throw new Error(`paciofs verify${full ? ' --full' : ''} ${volume}: expected a${full ? ' full' : 'n incremental'} verify, got ${JSON.stringify(report.incremental)}`)
  }

  const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)
  if (!m) throw new Error(`no peak RSS in the output of ${GNU_TIME} -v:\n${r.stderr.slice(-1000)}`)
  return {ms: r.ms, innerMs: report.ms ?? Number.NaN, peakRssMB: (Number(m[1]) * 1024) / 1e6}
}

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`

/** find | xargs over the backing dir, state dir excluded; `perCall`: xargs -n. */
function hashCommand(volume: string, tool: string, perCall?: number): string {
  return `find ${shq(volume)} -path ${shq(join(volume, '.paciofs'))} -prune -o -type f -print0 | xargs -0 -P2${perCall ? ` -n ${perCall}` : ''} ${tool} > /dev/null`
}

async function runHash(volume: string, tool: string, perCall?: number): Promise<number> {
  const cmd = hashCommand(volume, tool, perCall)
  const r = await timed('bash', ['-c', `set -o pipefail; ${cmd}`])
  if (r.code !== 0) throw new Error(`${cmd} exited ${r.code}: ${r.stderr.slice(-1000)}`)
  return r.ms
}

// ---- phases, in-process ----------------------------------------------------

export type Phases = Record<string, number>

/**
 * A full verify in this process with src/audit: ms per phase (`scan` includes
 * the comparison and keeping the verified index), and the largest JS heap seen
 * at a phase boundary.
 */
async function phasesOf(volume: string): Promise<Phases> {
  const marks: Array<[string, number]> = [['open', performance.now()]]
  let heap = process.memoryUsage().heapUsed
  const mark = (p: string) => {
    marks.push([p, performance.now()])
    heap = Math.max(heap, process.memoryUsage().heapUsed)
  }

  const report = await verifyVolume({volume, full: true, onPhase: mark})
  mark('end')
  if (report.status !== 'clean') throw new Error(`in-process verify of ${volume}: ${report.status}`)
  const phases: Phases = {records: report.checked.records, files: report.checked.files}
  for (let i = 0; i + 1 < marks.length; i++) phases[marks[i][0]] = Math.round(marks[i + 1][1] - marks[i][1])
  phases.total = Math.round(marks.at(-1)![1] - marks[0][1])
  phases.heapMB = Math.round(heap / 1e6)
  return phases
}

// ---- results ---------------------------------------------------------------

export interface Row {
  scenario: Scenario
  metric: string
  unit: string
  /** paciofs verify (volume A for history) */
  value: number
  baseline?: number
  baselineName?: string
  ratio?: number
  /** '–': for reference only */
  target: string
  /** null: not judged (smoke mode, or no target) */
  met: boolean | null
  runs: {value: number[]; baseline?: number[]}
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** A time row: medians in s, the ratio, judged against `max` (none: for reference). */
function ratioRow(scenario: Scenario, metric: string, value: number[], baselineName: string, baseline: number[], max: number | undefined, judged: boolean): Row {
  const ratio = median(value) / median(baseline)
  return {scenario, metric, unit: 's', value: median(value) / 1000, baseline: median(baseline) / 1000, baselineName, ratio,
    target: max === undefined ? '–' : `<= ${max}x`, met: judged && max !== undefined ? ratio <= max : null,
    runs: {value: value.map(x => x / 1000), baseline: baseline.map(x => x / 1000)}}
}

function fmt(x: number | undefined, digits = 2): string {
  return x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits)
}

function markdown(rows: Row[]): string {
  const head = ['scenario', 'metric', 'paciofs verify', 'baseline', 'ratio', 'target', 'met']
  const body = rows.map(r => [r.scenario, r.metric, `${fmt(r.value)} ${r.unit}`, r.baseline === undefined ? '' : `${fmt(r.baseline)} ${r.unit} (${r.baselineName})`,
    r.ratio === undefined ? '' : `${fmt(r.ratio)}x`, r.target, r.met === true ? 'yes' : r.met === false ? '**NO**' : r.target === '–' ? '' : 'not judged'])
  const w = head.map((h, i) => Math.max(h.length, ...body.map(b => b[i].length)))
  const line = (c: string[]) => `| ${c.map((x, i) => x.padEnd(w[i])).join(' | ')} |`
  return [line(head), `|${w.map(n => '-'.repeat(n + 2)).join('|')}|`, ...body.map(line)].join('\n')
}

const NOT_PHASES = new Set(['records', 'files', 'total', 'heapMB'])

/** One row per volume, one column per phase in the order verify reported them (a phase added to verify shows up by itself). */
function phaseTable(phases: Record<string, Phases>): string {
  const cols = [...new Set(Object.values(phases).flatMap(p => Object.keys(p)))].filter(k => !NOT_PHASES.has(k))
  const head = ['volume', 'records', 'files', ...cols.map(c => `${c} ms`), 'total ms', 'JS heap MB']
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---|' : '---:|')).join('')}`]
  for (const [name, p] of Object.entries(phases)) lines.push(`| ${[name, p.records, p.files, ...cols.map(c => p[c] ?? '–'), p.total, p.heapMB].join(' | ')} |`)
  return lines.join('\n')
}

// ---- the scenarios ---------------------------------------------------------

interface Ctx {
  sizes: Sizes
  smoke: boolean
  root: string
  profileDir?: string
  phases: Record<string, Phases>
  baselines: Record<string, Record<string, number[]>>
  verifyRuns: Record<string, VerifyRun[]>
}

const volumeDir = (ctx: Ctx, name: string) => join(ctx.root, name)

/**
 * Reads every file of the volume once, its state dir (journal, ledger,
 * history store) included, so that the page cache is warm for every side.
 */
async function warm(ctx: Ctx, name: string): Promise<void> {
  const r = await timed('bash', ['-c', `set -o pipefail; find ${shq(volumeDir(ctx, name))} -type f -print0 | xargs -0 -P2 cat > /dev/null`])
  if (r.code !== 0) throw new Error(`warming ${name}: ${r.stderr.slice(-1000)}`)
}

/** Warm-up, then the in-process phase run; and a profile if asked. */
async function phasesAndProfile(ctx: Ctx, name: string): Promise<void> {
  await warm(ctx, name)
  ctx.phases[name] = await phasesOf(volumeDir(ctx, name))
  if (ctx.profileDir) {
    const dir = join(ctx.profileDir, name)
    await mkdir(dir, {recursive: true})
    await runVerify(volumeDir(ctx, name), true, ['--cpu-prof', '--cpu-prof-dir', dir])
    say(`${name}: cpu profile of verify --full in ${dir}`)
  }
}

/**
 * verify --full, verify (incremental) and the two sha256sum pipelines, `reps`
 * rounds interleaved, after the warm-up and the phase run. Each verify is
 * judged against the faster pipeline's median.
 */
async function versusSha(ctx: Ctx, scenario: Scenario, max: number): Promise<Row[]> {
  const volume = volumeDir(ctx, scenario)
  const perCall = Math.max(1, Math.ceil(VOLUMES[scenario].files(ctx.sizes).length / 64))
  await phasesAndProfile(ctx, scenario)
  const full: VerifyRun[] = []
  const incr: VerifyRun[] = []
  const literal: number[] = []
  const split: number[] = []
  for (let i = 0; i < ctx.sizes.reps; i++) {
    full.push(await runVerify(volume, true))
    incr.push(await runVerify(volume, false))
    literal.push(await runHash(volume, 'sha256sum'))
    split.push(await runHash(volume, 'sha256sum', perCall))
    say(`${scenario} rep ${i + 1}: verify --full ${secs(full.at(-1)!.ms)} (${full.at(-1)!.peakRssMB.toFixed(0)} MB), ` +
      `incremental ${secs(incr.at(-1)!.ms)} (${incr.at(-1)!.peakRssMB.toFixed(0)} MB), sha256sum ${secs(literal.at(-1)!)}, with -n ${perCall} ${secs(split.at(-1)!)}`)
  }

  const splitName = `xargs -P2 -n ${perCall}`
  const [name, base] = median(split) < median(literal) ? [`sha256sum, ${splitName}`, split] : ['sha256sum, xargs -P2', literal]
  ctx.baselines[scenario] = {'xargs -P2': literal.map(x => x / 1000), [splitName]: split.map(x => x / 1000)}
  ctx.verifyRuns[`${scenario} --full`] = full
  ctx.verifyRuns[`${scenario} incremental`] = incr
  return [
    ratioRow(scenario, 'time, verify --full', full.map(v => v.ms), name, base, max, !ctx.smoke),
    ratioRow(scenario, 'time, verify (incremental)', incr.map(v => v.ms), name, base, max, !ctx.smoke),
  ]
}

async function hashing(ctx: Ctx): Promise<Row[]> {
  const rows = await versusSha(ctx, 'hashing', 1.25)
  if (spawnSync('openssl', ['version']).status === 0) {
    // For reading the rows above, no target: the same pipeline hashing with OpenSSL, whose SHA-256
    // is the code node's crypto runs (with the CPU's SHA extensions, which sha256sum may not use).
    const volume = volumeDir(ctx, 'hashing')
    const perCall = Math.max(1, Math.ceil(VOLUMES.hashing.files(ctx.sizes).length / 64))
    const runs: number[] = []
    for (let i = 0; i < ctx.sizes.reps; i++) runs.push(await runHash(volume, 'openssl dgst -sha256', perCall))
    rows.push(ratioRow('hashing', 'time, verify --full (reference)', ctx.verifyRuns['hashing --full'].map(v => v.ms), `openssl dgst -sha256, xargs -P2 -n ${perCall}`,
      runs, undefined, false))
  }

  return rows
}

async function many(ctx: Ctx): Promise<Row[]> {
  const rows = await versusSha(ctx, 'many', 2)
  for (const kind of ['--full', 'incremental']) {
    const rss = ctx.verifyRuns[`many ${kind}`].map(v => v.peakRssMB)
    const peak = Math.max(...rss)
    rows.push({scenario: 'many', metric: `peak RSS, verify ${kind === '--full' ? '--full' : '(incremental)'} (max of runs)`, unit: 'MB', value: peak,
      target: '< 300 MB', met: ctx.smoke ? null : peak < 300, runs: {value: rss}})
  }

  return rows
}

async function history(ctx: Ctx): Promise<Row[]> {
  const [a, b] = [volumeDir(ctx, 'history-A'), volumeDir(ctx, 'history-B')]
  await phasesAndProfile(ctx, 'history-A')
  await phasesAndProfile(ctx, 'history-B')
  const t = {aFull: [] as number[], bFull: [] as number[], aIncr: [] as number[], bIncr: [] as number[]}
  for (let i = 0; i < ctx.sizes.reps; i++) {
    t.aFull.push((await runVerify(a, true)).ms)
    t.bFull.push((await runVerify(b, true)).ms)
    t.aIncr.push((await runVerify(a, false)).ms)
    t.bIncr.push((await runVerify(b, false)).ms)
    say(`history rep ${i + 1}: verify --full A ${secs(t.aFull.at(-1)!)}, B ${secs(t.bFull.at(-1)!)}; incremental A ${secs(t.aIncr.at(-1)!)}, B ${secs(t.bIncr.at(-1)!)}`)
  }

  const n = ctx.sizes.history.rewrites
  return [
    ratioRow('history', `time, verify --full, ${n} rewrites (A)`, t.aFull, 'verify --full, written once (B)', t.bFull, 1.2, !ctx.smoke),
    ratioRow('history', `time, verify (incremental), ${n} rewrites (A)`, t.aIncr, 'verify (incremental), written once (B)', t.bIncr, 1.2, !ctx.smoke),
  ]
}

// ---- main ------------------------------------------------------------------

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, {encoding: 'utf8', cwd: REPO})
  return (r.stdout ?? '').trim() || (r.stderr ?? '').trim()
}

async function main(): Promise<number> {
  const {values} = benchArgs(import.meta.url, () => parseArgs({
    options: {
      smoke: {type: 'boolean', default: false},
      json: {type: 'string'},
      reps: {type: 'string'},
      only: {type: 'string'},
      dir: {type: 'string'},
      keep: {type: 'boolean', default: false},
      profile: {type: 'string'},
      fill: {type: 'string'}, // internal: fill one volume (--into DIR) and print what was written as JSON
      into: {type: 'string'},
    },
  }))
  const sizes = {...(values.smoke ? SMOKE : FULL)}
  if (values.fill) {
    if (!VOLUMES[values.fill] || !values.into) throw new Error(`--fill needs one of ${Object.keys(VOLUMES).join(', ')} and --into DIR`)
    out(JSON.stringify(await fillVolume(values.fill, values.into, sizes)))
    return 0
  }

  const selected = values.only ? values.only.split(',').map(s => s.trim()) as Scenario[] : SCENARIOS
  for (const s of selected) if (!SCENARIOS.includes(s)) throw new Error(`unknown scenario ${s}; choose from ${SCENARIOS.join(', ')}`)
  if (!existsSync(join(REPO, 'dist', 'commands', 'verify.js'))) throw new Error('dist/ is not built: run `npx tsc -p . && npx oclif manifest` first')
  if (!existsSync(GNU_TIME)) throw new Error(`${GNU_TIME} (GNU time) is needed for the peak RSS: apt-get install time`)
  if (values.reps) sizes.reps = Math.max(1, Number(values.reps))

  const root = await mkdtemp(join(resolve(values.dir ?? tmpdir()), 'paciofs-bench-verify-'))
  process.env.PACIOFS_CONFIG_DIR = join(root, 'config') // the fills' identity key ...
  process.env.PACIOFS_CACHE_DIR = join(root, 'verify-cache') // ... and verify's verified indexes: all inside the bench's tree
  const started = new Date()
  const env = {
    date: started.toISOString(),
    commit: sh('git', ['rev-parse', '--short', 'HEAD']),
    srcDirty: sh('git', ['status', '--porcelain', 'src']) !== '',
    node: process.version,
    sha256sum: sh('sha256sum', ['--version']).split('\n')[0],
    kernel: release(),
    cpus: cpus().length,
    loadavgStart: loadavg().map(x => x.toFixed(2)).join(' '),
    disk: sh('df', ['--output=source,fstype', root]).split('\n').at(-1)?.replace(/\s+/g, ' '),
    root,
  }
  say(`${values.smoke ? 'smoke' : 'full'} run in ${root} (${env.disk}), ${sizes.reps} rep(s), scenarios: ${selected.join(', ')}`)

  let interrupted = false
  const cleanup = async () => {
    for (const c of children) {
      try {
        process.kill(-c.pid!, 'SIGKILL') // its process group: a pipeline, or GNU time and node
      } catch { /* gone */ }
    }

    if (!values.keep) await rm(root, {recursive: true, force: true, maxRetries: 5})
  }

  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return
    interrupted = true
    say(`${sig}: cleaning up`)
    void cleanup().finally(() => process.exit(130))
  }

  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  const ctx: Ctx = {sizes, smoke: values.smoke!, root, profileDir: values.profile ? resolve(values.profile) : undefined, phases: {}, baselines: {}, verifyRuns: {}}
  const volumes: Record<string, Filled> = {}
  let fillSeconds = 0
  const rows: Row[] = []
  const errors: string[] = []
  const failed = (what: string, error: unknown) => {
    errors.push(`${what}: ${(error as Error).stack ?? error}`)
    say(`${what} FAILED: ${(error as Error).message}`)
  }

  const benches: Record<Scenario, (c: Ctx) => Promise<Row[]>> = {hashing, many, history}
  try {
    // all volumes fill at once (each fill is mostly one busy event loop), then the measurements run one at a time
    const t0 = performance.now()
    const names = Object.keys(VOLUMES).filter(n => selected.includes(VOLUMES[n].scenario))
    const fillErrors = new Map<string, unknown>()
    loadOrCreateIdentity() // once, here: fills that start together would race to create the identity key
    await Promise.all(names.map(name => fillInChild(name, volumeDir(ctx, name), ctx.smoke).then(f => {
      volumes[name] = f
      say(`${name}: ${f.files} files, ${(f.bytes / MiB).toFixed(1)} MiB, ${f.records} records, filled in ${f.fillSeconds} s`)
    }, error => fillErrors.set(name, error))))
    await timed('sync', []) // the fills' write-back must not run under the timed runs
    fillSeconds = Math.round((performance.now() - t0) / 1000)
    say(`volumes filled and synced in ${fillSeconds} s`)
    for (const s of selected) {
      const mine = names.filter(n => VOLUMES[n].scenario === s)
      const bad = mine.find(n => fillErrors.has(n))
      if (bad) failed(`${bad} fill`, fillErrors.get(bad))
      else {
        try {
          rows.push(...(await benches[s](ctx)))
        } catch (error) {
          failed(s, error)
        }
      }

      if (!values.keep) for (const n of mine) await rm(volumeDir(ctx, n), {recursive: true, force: true})
    }
  } finally {
    await cleanup()
  }

  const report = {
    bench: 'verify',
    mode: values.smoke ? 'smoke' : 'full',
    command: `node --import tsx bench/verify.ts ${process.argv.slice(2).join(' ')}`.trim(),
    baselineCommands: {sha256sum: hashCommand('<volume>', 'sha256sum'), split: hashCommand('<volume>', 'sha256sum', 64)},
    env: {...env, loadavgEnd: loadavg().map(x => x.toFixed(2)).join(' '), seconds: Math.round((Date.now() - started.getTime()) / 1000), fillSeconds},
    sizes,
    volumes,
    rows,
    baselineRuns: ctx.baselines,
    verifyRuns: ctx.verifyRuns,
    phases: ctx.phases,
    errors,
  }

  out(`paciofs verify vs sha256sum (${report.mode}, median of ${sizes.reps} interleaved runs after a warm-up), ` +
    `${env.date}, commit ${env.commit}${env.srcDirty ? ' + uncommitted src/' : ''}`)
  out(`node ${env.node}, ${env.sha256sum}, Linux ${env.kernel}, ${env.cpus} CPUs, ${env.disk}, load ${env.loadavgStart} -> ${report.env.loadavgEnd}, ${report.env.seconds} s`)
  out(`command: ${report.command}`)
  out(`volumes (filled at once in ${fillSeconds} s): ${Object.entries(volumes).map(([n, v]) => `${n} ${v.files} files, ${(v.bytes / MiB).toFixed(0)} MiB, ${v.records} records`).join('; ')}`)
  out()
  out(markdown(rows))
  out()
  out('Phases of one in-process verify --full (src/audit; "scan" includes the comparison and keeping the verified index):')
  out()
  out(phaseTable(ctx.phases))
  if (values.smoke) out('\n(smoke run: tiny sizes, numbers not judged)')
  if (values.json) await writeFile(values.json, JSON.stringify(report, null, 2) + '\n')
  for (const e of errors) process.stderr.write(`\nERROR ${e}\n`)
  return errors.length > 0 || interrupted ? 1 : 0
}

main().then(
  code => process.exit(code),
  error => {
    process.stderr.write(`${(error as Error).stack ?? error}\n`)
    process.exit(1)
  },
)
