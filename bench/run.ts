/**
 * PacioFS against the raw disk and bindfs, side by side in one run.
 *
 *   node --import tsx bench/run.ts [--smoke] [--only seqwrite,seqread,meta,randrw,fsync,memory,ledger]
 *        [--json out.json] [--reps N] [--dir PARENT]
 *
 * Everything lives under one fresh temp dir (in PARENT, default the OS temp
 * dir) on one disk: `disk/` (the raw directory), bindfs `-o big_writes` over a
 * directory, and a PacioFS volume mounted by `paciofs mount` in a child
 * process (dist/ must be built). Prints a Markdown table of the medians, the
 * ratios PacioFS/bindfs and PacioFS/disk, and whether each target of the
 * performance issue is met; `--json` also writes every run. `--smoke` runs
 * every benchmark once with tiny sizes (the test suite does, so that this file
 * cannot rot); its numbers are not judged. Needs root, fio and bindfs. Never
 * leaves a mount or a process behind, also when interrupted.
 */
import {mkdtemp, writeFile} from 'node:fs/promises'
import {spawnSync} from 'node:child_process'
import {loadavg, release, tmpdir} from 'node:os'
import {join, resolve} from 'node:path'
import {parseArgs} from 'node:util'
import {REPO} from '../test/helpers/paciofs.js'
import {removeTree} from '../test/helpers/tmp.js'
import {BENCHES, FULL, SIDE_BY_SIDE, SMOKE, fsyncLatency, ledger, memory, metadata, randrw, sequential, type BenchContext, type BenchName} from './fs/benches.js'
import {judge, markdownTable, median, type JudgedRow, type Row} from './fs/report.js'
import {TARGETS, childrenOf, fuseMountsBelow, openTargets, pacioChildPids, stopAllPacio, unmountBelow, type Targets} from './fs/targets.js'
import {benchArgs} from './args.js'

const out = (s = '') => process.stdout.write(`${s}\n`)
const say = (s: string) => process.stderr.write(`[bench] ${s}\n`)

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, {encoding: 'utf8', cwd: REPO})
  return (r.stdout ?? '').trim() || (r.stderr ?? '').trim()
}

async function main(): Promise<number> {
  const {values} = benchArgs(import.meta.url, () => parseArgs({
    options: {
      smoke: {type: 'boolean', default: false},
      only: {type: 'string'},
      json: {type: 'string'},
      reps: {type: 'string'},
      dir: {type: 'string'},
    },
  }))
  const selected = new Set<BenchName>(values.only ? (values.only.split(',').map(s => s.trim()) as BenchName[]) : BENCHES)
  for (const b of selected) if (!BENCHES.includes(b)) throw new Error(`unknown benchmark ${b}; choose from ${BENCHES.join(', ')}`)
  const sizes = {...(values.smoke ? SMOKE : FULL)}
  if (values.reps) sizes.reps = sizes.metaReps = Math.max(1, Number(values.reps))

  const root = await mkdtemp(join(resolve(values.dir ?? tmpdir()), 'paciofs-bench-'))
  process.env.TMPDIR = root // the bindfs helper and the ledger bench make their dirs under tmpdir(): same disk, one tree
  const started = new Date()
  const env = {
    date: started.toISOString(),
    commit: sh('git', ['rev-parse', '--short', 'HEAD']),
    srcDirty: sh('git', ['status', '--porcelain', 'src']) !== '',
    node: process.version,
    fio: sh('fio', ['--version']),
    bindfs: sh('bindfs', ['--version']),
    kernel: release(),
    cpus: sh('nproc', []),
    loadavgStart: loadavg().map(x => x.toFixed(2)).join(' '),
    disk: sh('df', ['--output=source,fstype', root]).split('\n').at(-1)?.replace(/\s+/g, ' '),
    root,
  }
  say(`${values.smoke ? 'smoke' : 'full'} run in ${root} (${env.disk}), ${sizes.reps} rep(s), benchmarks: ${[...selected].join(', ')}`)

  let targets: Targets | undefined
  let interrupted = false
  let cleaning: Promise<unknown> | undefined
  const cleanup = () => (cleaning ??= (async () => {
    const closed = await targets?.close().catch(e => ({paciofsExit: undefined, paciofsOutput: String(e)}))
    targets = undefined
    await stopAllPacio()
    await unmountBelow(root)
    if ((await fuseMountsBelow(root)).length === 0) await removeTree(root)
    return closed
  })())

  const closeTargets = async () => {
    const t = targets
    targets = undefined
    return t?.close()
  }

  // On a signal: start nothing new, end the workloads this process started (by
  // pid; PacioFS servers excepted: they are stopped cleanly), then clean up.
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return
    interrupted = true
    say(`${sig}: stopping`)
    void (async () => {
      const keep = pacioChildPids()
      for (const pid of await childrenOf(process.pid)) {
        if (!keep.has(pid)) {
          try {
            process.kill(pid, 'SIGTERM')
          } catch { /* already gone */ }
        }
      }
      await cleanup()
    })().finally(() => process.exit(130))
  }

  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  const ctx: BenchContext = {sizes, smoke: values.smoke!, root, targets: [], selected, log: say, cpu: new Map(), commands: new Map(), notes: {}}
  const rows: Row[] = []
  const errors: string[] = []
  const attempt = async (name: string, work: () => Promise<Row[]>) => {
    if (interrupted) return
    try {
      rows.push(...(await work()))
    } catch (e) {
      errors.push(`${name}: ${(e as Error).stack ?? e}`)
      say(`${name} FAILED: ${(e as Error).message}`)
    }
  }

  try {
    if (SIDE_BY_SIDE.some(b => selected.has(b))) {
      targets = await openTargets(root, TARGETS)
      ctx.targets = [...targets.all.values()]
      if (selected.has('seqwrite') || selected.has('seqread')) await attempt('seq', () => sequential(ctx))
      if (selected.has('meta')) await attempt('meta', () => metadata(ctx))
      if (selected.has('randrw')) await attempt('randrw', () => randrw(ctx))
      if (selected.has('fsync')) await attempt('fsync', () => fsyncLatency(ctx))
      const closed = await closeTargets()
      if (interrupted) return 130
      if (closed?.paciofsExit !== 0) errors.push(`paciofs mount exited ${closed?.paciofsExit} on SIGTERM:\n${closed?.paciofsOutput}`)
      else if (closed.paciofsOutput.trim()) ctx.notes['paciofs.output'] = closed.paciofsOutput
    }

    if (selected.has('memory')) await attempt('memory', () => memory(ctx))
    if (selected.has('ledger')) await attempt('ledger', () => ledger(ctx))
  } finally {
    await cleanup()
  }

  if (interrupted) return 130

  const judged: JudgedRow[] = rows.map(r => judge(r, !values.smoke))
  const cpu = Object.fromEntries([...ctx.cpu].map(([b, uses]) => [b, {mainPct: median(uses.map(u => u.mainPct)), totalPct: median(uses.map(u => u.totalPct)), runs: uses}]))
  const report = {
    bench: 'paciofs-fs',
    mode: values.smoke ? 'smoke' : 'full',
    command: `node --import tsx bench/run.ts ${process.argv.slice(2).join(' ')}`.trim(),
    env: {...env, loadavgEnd: loadavg().map(x => x.toFixed(2)).join(' '), seconds: Math.round((Date.now() - started.getTime()) / 1000)},
    sizes,
    rows: judged,
    paciofsCpu: cpu,
    commands: Object.fromEntries([...ctx.commands].map(([b, s]) => [b, [...s]])),
    notes: ctx.notes,
    errors,
  }

  out(`PacioFS benchmarks (${report.mode}, median of ${sizes.reps} interleaved runs, metadata ${sizes.metaReps}), ${env.date}, commit ${env.commit}${env.srcDirty ? ' + uncommitted src/' : ''}`)
  out(`node ${env.node}, ${env.fio}, ${env.bindfs}, Linux ${env.kernel}, ${env.cpus} CPUs, ${env.disk}, load ${env.loadavgStart} -> ${report.env.loadavgEnd}, ${report.env.seconds} s`)
  out(`command: ${report.command}`)
  out()
  out(markdownTable(judged))
  if (Object.keys(cpu).length > 0) {
    out()
    out('PacioFS server CPU while each benchmark ran (median; main thread = the event loop, 100% = saturated; all threads: 200% = both cores)')
    for (const [b, c] of Object.entries(cpu)) out(`  ${b.padEnd(9)} main thread ${String(c.mainPct).padStart(3)}%   all threads ${String(c.totalPct).padStart(3)}%`)
  }

  if (values.smoke) out('\n(smoke run: tiny sizes, numbers not judged)')
  if (values.json) await writeFile(values.json, JSON.stringify(report, null, 2) + '\n')
  for (const e of errors) process.stderr.write(`\nERROR ${e}\n`)
  return errors.length > 0 || interrupted ? 1 : 0
}

main().then(
  code => process.exit(code),
  e => {
    process.stderr.write(`${(e as Error).stack ?? e}\n`)
    process.exit(1)
  },
)
