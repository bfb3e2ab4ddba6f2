/**
 * Remote mount against local mount, side by side on loopback, in one run.
 *
 *   node --import tsx bench/remote.ts [--smoke] [--size MIB] [--files N] [--clients K] [--client-size MIB] [--fresh-memory] [--reps N] [--only PARTS] [--json out.json]
 *
 * One PacioFS volume mounted locally (`paciofs mount`), another served by
 * `paciofs serve` and mounted with `paciofs mount --server` (each in its own
 * process; dist/ must be built). Measures, alternating local and remote:
 *   seqwrite  fio sequential write of SIZE MiB, bs=1M, end_fsync=1 (target remote >= 0.6x local), each
 *             side after both volumes are quiet and the page cache written and dropped (as before a cold
 *             read: the local mount's version of its file was still being stored during the remote write);
 *             `--only write`: this row (and the CPU row) alone, without the reads
 *   seqread   fio sequential read of it, cold: after both volumes are quiet (the version of the
 *             file just written stored), `sync` and the page cache dropped; REPS reads a side,
 *             alternating which side reads first, median (>= 0.6x local); CPU s/GiB of the
 *             mount(s) and the server
 *   seqread-warm  context, no target: the same with the backing files in the page cache
 *             (one read each discarded first), median of REPS
 *   meta      create + close + unlink of N empty files             (>= 0.3x local)
 *   clients   K remote mounts (K processes) writing CLIENT-SIZE MiB each at once:
 *             aggregate MB/s against one client's (>= 1x), and the server's peak RSS (< 300 MB);
 *             both by fio's own clock (the K from the first job's start, its end less its runtime,
 *             to the last end; fio's start-up and the file's layout are not writing), the lone
 *             client the median of REPS runs (its memory state varies the most); every mount
 *             writes and removes WARM_UP_MIB first (a fresh mount's first GiB costs it a third more);
 *             the K start once the server has stored the lone client's version (quiet, then
 *             `sync`): that capture ran inside the K clients' time before. Both runs start with
 *             the memory full of clean page cache (a filler file, written first and removed
 *             after the local-k row; not with --smoke or --fresh-memory), as on a server that has
 *             been up a while: see fs/steady-memory.ts for why (this VM returns freed memory to
 *             its host, and a run needing little of it wrote at a discount)
 *   local-k   context, no target: the same K writers on the local mount against one writer
 *             there alone (the same disk and page cache: one file of CLIENT-SIZE may stay in
 *             the page cache where K of them do not)
 *   cpu       context, no target: CPU seconds per GiB written, of the server and of the mounts
 *             (all threads, from /proc), in the remote sequential write and in the K clients' run;
 *             and the server's in the clients row's two runs, each + until it was quiet after
 *             (the versions stored after a writer's fio ended)
 *   tls       context, no target: MB/s from one Node process to another over TLS on loopback
 *             (SIZE MiB, before and after the rest): the remote mount's data crosses such a connection
 * Prints a Markdown table with the load average; --smoke runs everything
 * once with tiny sizes (the test suite does, so this file cannot rot).
 */
import {mkdir, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {loadavg, tmpdir} from 'node:os'
import {join} from 'node:path'
import {parseArgs} from 'node:util'
import {mountPacio, type PacioMount} from '../test/helpers/paciofs.js'
import {mountRemote, startServe, type Served} from '../test/helpers/remote.js'
import {removeTree} from '../test/helpers/tmp.js'
import {fio} from './fs/fio.js'
import {smallFiles} from './fs/files.js'
import {tlsCeiling} from './fs/tls-ceiling.js'
import {watchRss} from './fs/proc.js'
import {cpuSeconds, median, quiet, quietThenCold} from './fs/quiet.js'
import {fillPageCache, meminfoMiB, reclaimed, vmstat, type PageCacheFill} from './fs/steady-memory.js'

/** MiB each mount of the clients row writes (and removes) before the row is timed */
const WARM_UP_MIB = 256
const PARTS = ['seq', 'write', 'meta', 'clients', 'tls']
const USAGE = `node --import tsx bench/remote.ts [--smoke] [--size MIB] [--files N] [--clients K] [--client-size MIB] [--fresh-memory] [--reps N] [--only PARTS] [--json out.json]

  --only PARTS   comma-separated, of: ${PARTS.join(', ')} (default: all; write: the sequential write alone, no reads)
  --reps N       cold and warm reads of each side, and runs of the lone client (default 3; smoke 1); the table gives the median

examples:
  node --import tsx bench/remote.ts --size 1024 --files 2000 --clients 8 --client-size 1024
  node --import tsx bench/remote.ts --size 1024 --only seq --reps 5`

const say = (s: string) => process.stderr.write(`[bench] ${s}\n`)
const load = () => loadavg().map(l => l.toFixed(1)).join(' ')

interface Row {
  bench: string
  metric: string
  local?: number
  remote: number
  ratio?: number
  target: string
  met: boolean
  note?: string
}

async function main(): Promise<number> {
  const {values} = parseArgs({options: {
    smoke: {type: 'boolean', default: false}, 'fresh-memory': {type: 'boolean', default: false},
    size: {type: 'string'}, files: {type: 'string'}, clients: {type: 'string'}, 'client-size': {type: 'string'}, json: {type: 'string'},
    reps: {type: 'string'}, only: {type: 'string'}, help: {type: 'boolean', short: 'h', default: false},
  }})
  if (values.help) {
    process.stdout.write(`${USAGE}\n`)
    return 0
  }

  const parts = new Set(values.only?.split(',') ?? PARTS)
  for (const p of parts) if (!PARTS.includes(p)) throw new Error(`--only: unknown part ${p} (parts: ${PARTS.join(', ')})`)
  const want = (p: string) => parts.has(p)
  const reps = Number(values.reps ?? (values.smoke ? 1 : 3))
  if (!Number.isSafeInteger(reps) || reps < 1) throw new Error(`--reps must be a positive integer, not ${values.reps}`)
  const smoke = values.smoke!
  const sizeMiB = Number(values.size ?? (smoke ? 8 : 1024))
  const files = Number(values.files ?? (smoke ? 50 : 10_000))
  const clients = Number(values.clients ?? (smoke ? 2 : 8))
  const clientMiB = Number(values['client-size'] ?? (smoke ? 4 : 1024))
  const timeoutMs = smoke ? 120_000 : 3_600_000

  const root = await mkdtemp(join(tmpdir(), 'paciofs-bench-remote-'))
  const config = join(root, 'config')
  const mounts: PacioMount[] = []
  let server: Served | undefined
  const rows: Row[] = []
  let filler: PageCacheFill | undefined // the clients part's (fs/steady-memory.ts)
  let rss: Awaited<ReturnType<Awaited<ReturnType<typeof watchRss>>['stop']>> | undefined
  const loadBefore = load()
  try {
    say(`local mount, server and remote mount under ${root} (load ${loadBefore})`)
    const local = await mountPacio(join(root, 'local'), join(root, 'mnt-local'), {configDir: config})
    mounts.push(local)
    server = await startServe([join(root, 'remote')], {configDir: config})
    const remote = await mountRemote(server, 'remote', join(root, 'mnt-remote'), {configDir: config})
    mounts.push(remote)
    const both = {local: local.mountpoint, remote: remote.mountpoint}
    const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100
    const tlsBefore = want('tls') ? await tlsCeiling(join(config, 'server'), sizeMiB, timeoutMs) : 0

    // sequential write, then cold reads (quiet volumes, page cache dropped), alternating which side reads first
    const pids = {local: local.child.pid!, remote: remote.child.pid!, server: server.child.pid!}
    const volumes = [join(root, 'local'), join(root, 'remote')]
    const perGiB = (s: number, mib: number) => s / (mib / 1024)
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0)
    const cpu: Record<string, number> = {}
    const writeOnly = want('write') && !want('seq')
    if (want('seq') || writeOnly) {
      const seq: Record<string, {w: number; r: number[]; warm: number[]; cpu: number[][]}> = {}
      for (const [name, mnt] of Object.entries(both)) {
        const dir = join(mnt, 'seq')
        await mkdir(dir)
        // each side's write alone: the other's leftovers (its version still stored in the background,
        // its dirty pages still written back) would otherwise share the cores and the disk with it
        const q = await quietThenCold(Object.values(pids), volumes, {maxMs: smoke ? 10_000 : 300_000})
        say(`${name}: fio write ${sizeMiB} MiB (quiet after ${(q.waitedMs / 1000).toFixed(1)} s${q.quiet ? '' : ', NOT quiet'}; load ${load()})`)
        const own = name === 'local' ? [pids.local] : [pids.server, pids.remote]
        const c0 = await cpuSeconds(own)
        const w = await fio(dir, ['--name=seq', '--bs=1M', `--size=${sizeMiB}M`, '--rw=write', '--end_fsync=1'], timeoutMs)
        const c1 = await cpuSeconds(own)
        if (name === 'local') cpu.localWrite = perGiB(c1[0] - c0[0], sizeMiB)
        else [cpu.serverWrite, cpu.mountWrite] = [perGiB(c1[0] - c0[0], sizeMiB), perGiB(c1[1] - c0[1], sizeMiB)]
        seq[name] = {w: w.writeBytesPerSec / 1e6, r: [], warm: [], cpu: []}
      }

      const gib = sizeMiB / 1024
      const wr = ratio(seq.remote.w, seq.local.w)
      rows.push({bench: 'seqwrite', metric: `fio write ${sizeMiB} MiB bs=1M end_fsync (MB/s)`, local: seq.local.w, remote: seq.remote.w, ratio: wr, target: '>= 0.6x', met: wr >= 0.6})
      if (writeOnly) say(`seq write MB/s local ${seq.local.w.toFixed(1)} remote ${seq.remote.w.toFixed(1)} (load ${load()})`)

      const readOnce = async (name: string) => {
        const own = name === 'local' ? [pids.local] : [pids.remote, pids.server]
        const c0 = await cpuSeconds(own)
        const r = await fio(join(both[name as keyof typeof both], 'seq'), ['--name=seq', '--bs=1M', `--size=${sizeMiB}M`, '--rw=read'], timeoutMs)
        const c1 = await cpuSeconds(own)
        return {mbs: r.readBytesPerSec / 1e6, cpu: c1.map((c, i) => (c - c0[i]) / gib)}
      }

      if (!writeOnly) {
        for (let rep = 0; rep < reps; rep++) {
          for (const name of rep % 2 === 0 ? ['local', 'remote'] : ['remote', 'local']) {
            const q = await quietThenCold(Object.values(pids), volumes, {maxMs: smoke ? 10_000 : 300_000})
            say(`${name}: fio read ${sizeMiB} MiB, cold (rep ${rep + 1}/${reps}; quiet after ${(q.waitedMs / 1000).toFixed(1)} s${q.quiet ? '' : ', NOT quiet'}; load ${load()})`)
            const {mbs, cpu} = await readOnce(name)
            seq[name].r.push(mbs)
            seq[name].cpu.push(cpu)
            say(`${name}: ${mbs.toFixed(1)} MB/s, CPU s/GiB ${cpu.map(c => c.toFixed(2)).join(' / ')}`)
          }
        }

        // warm, as context: the backing file in the page cache on both sides (one read discarded first)
        for (const name of ['local', 'remote']) await readOnce(name)
        for (let rep = 0; rep < reps; rep++) {
          for (const name of rep % 2 === 0 ? ['local', 'remote'] : ['remote', 'local']) seq[name].warm.push((await readOnce(name)).mbs)
        }

        const rr = ratio(median(seq.remote.r), median(seq.local.r))
        const ww = ratio(median(seq.remote.warm), median(seq.local.warm))
        const list = (xs: number[]) => xs.map(x => x.toFixed(0)).join(', ')
        const cpuOf = (name: string, i: number) => median(seq[name].cpu.map(c => c[i])).toFixed(2)
        say(`seq write MB/s local ${seq.local.w.toFixed(1)} remote ${seq.remote.w.toFixed(1)}; cold read local ${list(seq.local.r)} remote ${list(seq.remote.r)}; warm local ${list(seq.local.warm)} remote ${list(seq.remote.warm)} (load ${load()})`)
        rows.push({bench: 'seqread', metric: `fio read ${sizeMiB} MiB bs=1M, cold (MB/s)`, local: median(seq.local.r), remote: median(seq.remote.r), ratio: rr, target: '>= 0.6x', met: rr >= 0.6,
          note: `median of ${reps}, alternating; local ${list(seq.local.r)}, remote ${list(seq.remote.r)}; CPU s/GiB: local mount ${cpuOf('local', 0)}, remote mount ${cpuOf('remote', 0)}, server ${cpuOf('remote', 1)}`})
        rows.push({bench: 'seqread-warm', metric: `fio read ${sizeMiB} MiB bs=1M, backing file in the page cache (MB/s)`, local: median(seq.local.warm), remote: median(seq.remote.warm), ratio: ww, target: '', met: true,
          note: `context; median of ${reps} after one discarded read each; local ${list(seq.local.warm)}, remote ${list(seq.remote.warm)}`})
      }
    }

    // metadata
    if (want('meta')) {
      const meta: Record<string, number> = {}
      for (const [name, mnt] of Object.entries(both)) {
        say(`${name}: create+close+unlink ${files} files`)
        const res = await smallFiles('churn', join(mnt, 'meta'), files, {size: 0, timeoutMs})
        meta[name] = files / (res.totalMs / 1000)
      }

      say(`meta files/s local ${meta.local.toFixed(1)} remote ${meta.remote.toFixed(1)} (load ${load()})`)
      const mr = ratio(meta.remote, meta.local)
      rows.push({bench: 'meta', metric: `create + close + unlink, ${files} files (files/s)`, local: meta.local, remote: meta.remote, ratio: mr, target: '>= 0.3x', met: mr >= 0.3})
    }

    // K clients at once, each its own mount process
    if (want('clients')) {
      say(`${clients} remote clients writing ${clientMiB} MiB each`)
      const extra: PacioMount[] = []
      for (let i = 1; i < clients; i++) extra.push(await mountRemote(server, 'remote', join(root, `mnt-c${i}`), {configDir: config}))
      mounts.push(...extra)
      const all = [remote, ...extra]
      await mkdir(join(remote.mountpoint, 'seq'), {recursive: true})
      await mkdir(join(local.mountpoint, 'seq'), {recursive: true})
      const quietOpts = {maxMs: smoke ? 10_000 : 300_000}
      // every mount warmed up alike: a mount's first writes fault its buffers and heap in (measured, a fresh
      // mount took 1.64 CPU s for its first GiB, 1.23-1.25 for each after), and K-1 of the K are fresh
      const warmMiB = Math.min(WARM_UP_MIB, clientMiB)
      for (const [i, m] of all.entries()) {
        await fio(m.mountpoint, [`--name=warm-${i}`, '--bs=1M', `--size=${warmMiB}M`, '--rw=write', '--end_fsync=1'], timeoutMs)
        await rm(join(m.mountpoint, `warm-${i}.0.0`))
      }

      say(`clients: each of the ${all.length} mounts wrote ${warmMiB} MiB first (warm-up)`)
      if (!smoke && !values['fresh-memory']) {
        filler = await fillPageCache(root)
        say(`clients: page cache filled with ${filler.filledMiB} MiB of clean pages in ${filler.seconds.toFixed(1)} s`)
      }

      const memFree = async () => `${await meminfoMiB('MemFree')} MiB free`
      const serverCpu = async () => sum(await cpuSeconds([pids.server]))
      const lone: Array<{bw: number; cpu: number; after: number}> = []
      for (let rep = 0; rep < reps; rep++) {
        say(`clients: one alone starts (rep ${rep + 1}/${reps}; ${await memFree()})`)
        const s0 = await serverCpu()
        const [m0, v0] = [sum(await cpuSeconds([pids.remote])), await vmstat()]
        // a new file each time, as the K write (fio writes an existing file in place, without truncating it)
        const one = await fio(join(remote.mountpoint, 'seq'), [`--name=one-${rep + 1}`, '--bs=1M', `--size=${clientMiB}M`, '--rw=write', '--end_fsync=1'], timeoutMs)
        const s1 = await serverCpu()
        const [m1, v1] = [sum(await cpuSeconds([pids.remote])), await vmstat()]
        say(`clients: one alone: server ${perGiB(s1 - s0, clientMiB).toFixed(2)}, mount ${perGiB(m1 - m0, clientMiB).toFixed(2)} CPU s/GiB; ${reclaimed(v0, v1)}`)
        // the lone client's version is stored after its fio ended: not in the K clients' time
        const q1 = await quiet(Object.values(pids), volumes, quietOpts)
        const s2 = await serverCpu()
        lone.push({bw: one.writeBytesPerSec / 1e6, cpu: perGiB(s1 - s0, clientMiB), after: perGiB(s2 - s1, clientMiB)})
        say(`clients: one alone ${(one.writeBytesPerSec / 1e6).toFixed(1)} MB/s (fio ${(one.runtimeMs / 1000).toFixed(1)} s, wall ${(one.wallMs / 1000).toFixed(1)} s), stored after ${(q1.waitedMs / 1000).toFixed(1)} s${q1.quiet ? '' : ' (NOT quiet)'}`)
      }

      say(`clients: ${clients} at once start (${await memFree()})`)
      const watch = await watchRss(server.child.pid!)
      const mountPids = all.map(m => m.child.pid!)
      const cpu0 = [sum(await cpuSeconds([pids.server])), sum(await cpuSeconds(mountPids))]
      const v2 = await vmstat()
      const t0 = performance.now()
      const ends: Array<{at: number; runtime: number}> = []
      // a client that fails is reported in the table (with the server's RSS, measured all the same)
      const results = await Promise.allSettled(all.map(async (m, i) => {
        const dir = join(m.mountpoint, `client-${i}`)
        await mkdir(dir)
        const r = await fio(dir, ['--name=c', '--bs=1M', `--size=${clientMiB}M`, '--rw=write', '--end_fsync=1'], timeoutMs)
        ends.push({at: (performance.now() - t0) / 1000, runtime: r.runtimeMs / 1000})
      }))
      const failed = results.flatMap(r => (r.status === 'rejected' ? [String((r.reason as Error)?.message ?? r.reason).split('\n')[0]] : []))
      for (const f of failed) say(`a client failed: ${f}`)
      const wall = (performance.now() - t0) / 1000
      say(`clients: ${clients} at once ended at ${ends.map(e => `${e.at.toFixed(1)} s (fio ${e.runtime.toFixed(1)})`).join(', ')}`)
      cpu.serverClients = perGiB(sum(await cpuSeconds([pids.server])) - cpu0[0], clients * clientMiB)
      cpu.mountClients = perGiB(sum(await cpuSeconds(mountPids)) - cpu0[1], clients * clientMiB)
      say(`clients: ${clients} at once: server ${cpu.serverClients.toFixed(2)}, mounts ${cpu.mountClients.toFixed(2)} CPU s/GiB; ${reclaimed(v2, await vmstat())}`)
      const peak = await watch.stop()
      const s3 = await serverCpu()
      const q2 = await quiet(Object.values(pids), volumes, quietOpts) // what the K clients left (their versions) before the local rows
      const s4 = await serverCpu()
      cpu.serverOne = median(lone.map(l => l.cpu))
      cpu.serverOneAfter = median(lone.map(l => l.after))
      cpu.serverClientsAfter = perGiB(s4 - s3, clients * clientMiB)
      say(`clients: stored after ${(q2.waitedMs / 1000).toFixed(1)} s${q2.quiet ? '' : ' (NOT quiet)'}; server CPU s/GiB: one alone ${cpu.serverOne.toFixed(2)} + ${cpu.serverOneAfter.toFixed(2)} after, ${clients} at once ${cpu.serverClients.toFixed(2)} + ${cpu.serverClientsAfter.toFixed(2)} after`)
      // by fio's own clock, as the lone client's figure is: from the first job's start (its end less its
      // runtime) to the last end; fio's start-up before that (the process, the file's layout) is not writing
      const span = ends.length > 0 ? Math.max(...ends.map(e => e.at)) - Math.min(...ends.map(e => e.at - e.runtime)) : wall
      const aggregate = (clients * clientMiB * 1048576) / 1e6 / span
      say(`clients: ${clients} at once wrote for ${span.toFixed(1)} s of ${wall.toFixed(1)} s wall: ${aggregate.toFixed(1)} MB/s (${((clients * clientMiB * 1048576) / 1e6 / wall).toFixed(1)} by the wall)`)
      const single = median(lone.map(l => l.bw))
      rss = peak
      say(`clients: aggregate ${aggregate.toFixed(1)} MB/s, one alone ${single.toFixed(1)} MB/s, server peak RSS ${peak.peakMB} MB (load ${load()})`)
      rows.push({bench: 'clients', metric: `${clients} clients x ${clientMiB} MiB at once: aggregate vs one client (MB/s)`, local: single, remote: aggregate, ratio: ratio(aggregate, single), target: '>= 1x', met: aggregate >= single,
        note: `"local" column: one remote client alone; ${filler ? `both with the memory full of clean page cache (${filler.filledMiB} MiB filled first)` : 'fresh memory (--fresh-memory or --smoke)'}${failed.length > 0 ? `; ${failed.length} of ${clients} clients FAILED: ${failed[0].slice(0, 200)}` : ''}`})
      if (failed.length > 0) rows.at(-1)!.met = false
      // the same K writers on the local mount: what the disk and the volume do with K files at once
      say(`local: 1 then ${clients} writers of ${clientMiB} MiB`)
      const localOne = await fio(join(local.mountpoint, 'seq'), ['--name=one', '--bs=1M', `--size=${clientMiB}M`, '--rw=write', '--end_fsync=1'], timeoutMs)
      const tl = performance.now()
      await Promise.all(all.map(async (_m, i) => {
        const dir = join(local.mountpoint, `client-${i}`)
        await mkdir(dir)
        await fio(dir, ['--name=c', '--bs=1M', `--size=${clientMiB}M`, '--rw=write', '--end_fsync=1'], timeoutMs)
      }))
      const localAggregate = (clients * clientMiB * 1048576) / 1e6 / ((performance.now() - tl) / 1000)
      rows.push({bench: 'local-k', metric: `local mount, ${clients} writers x ${clientMiB} MiB at once: aggregate vs one writer alone (MB/s)`, local: localOne.writeBytesPerSec / 1e6, remote: localAggregate,
        ratio: ratio(localAggregate, localOne.writeBytesPerSec / 1e6), target: '', met: true, note: 'context for the row above: the same disk without the network; "remote" column: the local aggregate'})
      say(`local: ${clients} writers aggregate ${localAggregate.toFixed(1)} MB/s, one alone ${(localOne.writeBytesPerSec / 1e6).toFixed(1)} MB/s (load ${load()})`)
      await filler?.remove()
    }

    if (want('tls')) {
      const tlsAfter = await tlsCeiling(join(config, 'server'), sizeMiB, timeoutMs)
      rows.push({bench: 'tls', metric: `TLS on loopback, one Node process to another, ${sizeMiB} MiB (MB/s; before / after)`, local: tlsBefore, remote: tlsAfter, target: '', met: true,
        note: 'the ceiling of any data path through one Node TLS connection here'})
    }

    if (want('seq') || writeOnly) {
      const c = (n: number | undefined) => (n === undefined ? '-' : n.toFixed(2))
      rows.push({bench: 'cpu', metric: `CPU s per GiB written, all threads: server / remote mount (local mount: ${c(cpu.localWrite)})`, local: cpu.serverWrite, remote: cpu.mountWrite, target: '', met: true,
        note: `sequential write${want('clients') ? `; with ${clients} clients at once: server ${c(cpu.serverClients)}, mounts ${c(cpu.mountClients)}; server, in the clients row's time + until quiet after (storing the versions): one alone ${c(cpu.serverOne)} + ${c(cpu.serverOneAfter)}, ${clients} at once ${c(cpu.serverClients)} + ${c(cpu.serverClientsAfter)}` : ''}`})
      say(`CPU s/GiB written: local mount ${c(cpu.localWrite)}; remote write server ${c(cpu.serverWrite)} mount ${c(cpu.mountWrite)}; ${clients} clients server ${c(cpu.serverClients)} mounts ${c(cpu.mountClients)}`)
    }
    if (rss) rows.push({bench: 'server-rss', metric: `server peak RSS with ${clients} clients writing (MB, ${rss.method})`, remote: rss.peakMB, target: '< 300', met: rss.peakMB < 300})
  } finally {
    for (const m of mounts.splice(0).reverse()) await m.stop().catch(() => m.kill())
    if (server) await server.stop().catch(() => server!.kill())
    await removeTree(root)
  }

  const loadAfter = load()
  const f = (n?: number) => (n === undefined ? '' : n >= 100 ? Math.round(n).toLocaleString('en') : n.toFixed(1))
  process.stdout.write(`load average before: ${loadBefore}, after: ${loadAfter}${smoke ? ' (smoke: numbers not judged)' : ''}\n\n`)
  process.stdout.write('| benchmark | local | remote | remote / local | target | met |\n| --- | --: | --: | --: | --- | --- |\n')
  for (const r of rows) process.stdout.write(`| ${r.metric}${r.note ? ` (${r.note})` : ''} | ${f(r.local)} | ${f(r.remote)} | ${r.ratio === undefined ? '' : `${r.ratio}x`} | ${r.target} | ${smoke || r.target === '' ? '–' : r.met ? 'yes' : 'no'} |\n`)
  if (values.json) await writeFile(values.json, JSON.stringify({date: new Date().toISOString(), root, smoke, sizeMiB, files, clients, clientMiB, loadBefore, loadAfter, rows}, null, 2))
  return 0
}

main().then(code => process.exit(code), error => {
  process.stderr.write(`${(error as Error).stack ?? error}\n`)
  process.exit(2)
})
