/**
 * Remote mount against local mount, side by side on loopback, in one run.
 *
 *   node --import tsx bench/remote.ts [--smoke] [--size MIB] [--files N] [--clients K] [--client-size MIB] [--json out.json]
 *
 * One PacioFS volume mounted locally (`paciofs mount`), another served by
 * `paciofs serve` and mounted with `paciofs mount --server` (each in its own
 * process; dist/ must be built). Measures, alternating local and remote:
 *   seqwrite  fio sequential write of SIZE MiB, bs=1M, end_fsync=1 (target remote >= 0.6x local)
 *   seqread   fio sequential read of it, page cache dropped first  (>= 0.6x local)
 *   meta      create + close + unlink of N empty files             (>= 0.3x local)
 *   clients   K remote mounts (K processes) writing CLIENT-SIZE MiB each at once:
 *             aggregate MB/s against one client's (>= 1x), and the server's peak RSS (< 300 MB)
 *   local-k   context, no target: the same K writers on the local mount against one writer
 *             there alone (the same disk and page cache: one file of CLIENT-SIZE may stay in
 *             the page cache where K of them do not)
 *   cpu       context, no target: CPU seconds per GiB written, of the server and of the mounts
 *             (all threads, from /proc), in the remote sequential write and in the K clients' run
 *   tls       context, no target: MB/s from one Node process to another over TLS on loopback
 *             (SIZE MiB, before and after the rest): the remote mount's data crosses such a connection
 * Prints a Markdown table with the load average; --smoke runs everything
 * once with tiny sizes (the test suite does, so this file cannot rot).
 */
import {mkdir, mkdtemp, writeFile} from 'node:fs/promises'
import {loadavg, tmpdir} from 'node:os'
import {join} from 'node:path'
import {parseArgs} from 'node:util'
import {mountPacio, type PacioMount} from '../test/helpers/paciofs.js'
import {mountRemote, startServe, type Served} from '../test/helpers/remote.js'
import {removeTree} from '../test/helpers/tmp.js'
import {fio} from './fs/fio.js'
import {smallFiles} from './fs/files.js'
import {tlsCeiling} from './fs/tls-ceiling.js'
import {cpuSample, watchRss} from './fs/proc.js'

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

async function dropCaches(): Promise<void> {
  await writeFile('/proc/sys/vm/drop_caches', '3').catch(() => {})
}

async function main(): Promise<number> {
  const {values} = parseArgs({options: {
    smoke: {type: 'boolean', default: false},
    size: {type: 'string'}, files: {type: 'string'}, clients: {type: 'string'}, 'client-size': {type: 'string'}, json: {type: 'string'},
  }})
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
  const loadBefore = load()
  try {
    say(`local mount, server and remote mount under ${root} (load ${loadBefore})`)
    const local = await mountPacio(join(root, 'local'), join(root, 'mnt-local'), {configDir: config})
    mounts.push(local)
    server = await startServe([join(root, 'remote')], {configDir: config})
    const remote = await mountRemote(server, 'remote', join(root, 'mnt-remote'), {configDir: config})
    mounts.push(remote)
    const both = {local: local.mountpoint, remote: remote.mountpoint}
    const tlsBefore = await tlsCeiling(join(config, 'server'), sizeMiB, timeoutMs)

    // CPU seconds of processes over an interval, per GiB written
    const cpuOf = async (pids: number[]) => (await Promise.all(pids.map(async pid => (await cpuSample(pid)).total))).reduce((a, b) => a + b, 0)
    const perGiB = (s: number, mib: number) => s / (mib / 1024)
    const cpu: Record<string, number> = {}
    // sequential write and read
    const seq: Record<string, {w: number; r: number}> = {}
    for (const [name, mnt] of Object.entries(both)) {
      const dir = join(mnt, 'seq')
      await mkdir(dir)
      say(`${name}: fio write ${sizeMiB} MiB`)
      const procs = name === 'local' ? [local.child.pid!] : [server.child.pid!, remote.child.pid!]
      const before = await Promise.all(procs.map(pid => cpuOf([pid])))
      const w = await fio(dir, ['--name=seq', '--bs=1M', `--size=${sizeMiB}M`, '--rw=write', '--end_fsync=1'], timeoutMs)
      const after = await Promise.all(procs.map(pid => cpuOf([pid])))
      if (name === 'local') cpu.localWrite = perGiB(after[0] - before[0], sizeMiB)
      else [cpu.serverWrite, cpu.mountWrite] = [perGiB(after[0] - before[0], sizeMiB), perGiB(after[1] - before[1], sizeMiB)]
      await dropCaches()
      say(`${name}: fio read ${sizeMiB} MiB`)
      const r = await fio(dir, ['--name=seq', '--bs=1M', `--size=${sizeMiB}M`, '--rw=read'], timeoutMs)
      seq[name] = {w: w.writeBytesPerSec / 1e6, r: r.readBytesPerSec / 1e6}
    }

    const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100
    const wr = ratio(seq.remote.w, seq.local.w)
    const rr = ratio(seq.remote.r, seq.local.r)
    rows.push({bench: 'seqwrite', metric: `fio write ${sizeMiB} MiB bs=1M end_fsync (MB/s)`, local: seq.local.w, remote: seq.remote.w, ratio: wr, target: '>= 0.6x', met: wr >= 0.6})
    say(`seq write MB/s local ${seq.local.w.toFixed(1)} remote ${seq.remote.w.toFixed(1)}; read local ${seq.local.r.toFixed(1)} remote ${seq.remote.r.toFixed(1)} (load ${load()})`)
    rows.push({bench: 'seqread', metric: `fio read ${sizeMiB} MiB bs=1M (MB/s)`, local: seq.local.r, remote: seq.remote.r, ratio: rr, target: '>= 0.6x', met: rr >= 0.6})

    // metadata
    const meta: Record<string, number> = {}
    for (const [name, mnt] of Object.entries(both)) {
      say(`${name}: create+close+unlink ${files} files`)
      const res = await smallFiles('churn', join(mnt, 'meta'), files, {size: 0, timeoutMs})
      meta[name] = files / (res.totalMs / 1000)
    }

    say(`meta files/s local ${meta.local.toFixed(1)} remote ${meta.remote.toFixed(1)} (load ${load()})`)
    const mr = ratio(meta.remote, meta.local)
    rows.push({bench: 'meta', metric: `create + close + unlink, ${files} files (files/s)`, local: meta.local, remote: meta.remote, ratio: mr, target: '>= 0.3x', met: mr >= 0.3})

    // K clients at once, each its own mount process
    say(`${clients} remote clients writing ${clientMiB} MiB each`)
    const extra: PacioMount[] = []
    for (let i = 1; i < clients; i++) extra.push(await mountRemote(server, 'remote', join(root, `mnt-c${i}`), {configDir: config}))
    mounts.push(...extra)
    const all = [remote, ...extra]
    const one = await fio(join(remote.mountpoint, 'seq'), ['--name=one', '--bs=1M', `--size=${clientMiB}M`, '--rw=write', '--end_fsync=1'], timeoutMs)
    const rss = await watchRss(server.child.pid!)
    const mountPids = all.map(m => m.child.pid!)
    const cpu0 = [await cpuOf([server.child.pid!]), await cpuOf(mountPids)]
    const t0 = performance.now()
    // a client that fails is reported in the table (with the server's RSS, measured all the same)
    const results = await Promise.allSettled(all.map(async (m, i) => {
      const dir = join(m.mountpoint, `client-${i}`)
      await mkdir(dir)
      await fio(dir, ['--name=c', '--bs=1M', `--size=${clientMiB}M`, '--rw=write', '--end_fsync=1'], timeoutMs)
    }))
    const failed = results.flatMap(r => (r.status === 'rejected' ? [String((r.reason as Error)?.message ?? r.reason).split('\n')[0]] : []))
    for (const f of failed) say(`a client failed: ${f}`)
    const wall = (performance.now() - t0) / 1000
    cpu.serverClients = perGiB(await cpuOf([server.child.pid!]) - cpu0[0], clients * clientMiB)
    cpu.mountClients = perGiB(await cpuOf(mountPids) - cpu0[1], clients * clientMiB)
    const peak = await rss.stop()
    const aggregate = (clients * clientMiB * 1048576) / 1e6 / wall
    const single = one.writeBytesPerSec / 1e6
    rows.push({bench: 'clients', metric: `${clients} clients x ${clientMiB} MiB at once: aggregate vs one client (MB/s)`, local: single, remote: aggregate, ratio: ratio(aggregate, single), target: '>= 1x', met: aggregate >= single,
      note: `"local" column: one remote client alone${failed.length > 0 ? `; ${failed.length} of ${clients} clients FAILED: ${failed[0].slice(0, 200)}` : ''}`})
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
    const tlsAfter = await tlsCeiling(join(config, 'server'), sizeMiB, timeoutMs)
    rows.push({bench: 'tls', metric: `TLS on loopback, one Node process to another, ${sizeMiB} MiB (MB/s; before / after)`, local: tlsBefore, remote: tlsAfter, target: '', met: true,
      note: 'the ceiling of any data path through one Node TLS connection here'})
    const c = (n: number) => n.toFixed(2)
    rows.push({bench: 'cpu', metric: `CPU s per GiB written, all threads: server / remote mount (local mount: ${c(cpu.localWrite)})`, local: cpu.serverWrite, remote: cpu.mountWrite, target: '', met: true,
      note: `sequential write; with ${clients} clients at once: server ${c(cpu.serverClients)}, mounts ${c(cpu.mountClients)}`})
    say(`CPU s/GiB: local mount ${c(cpu.localWrite)}; remote write server ${c(cpu.serverWrite)} mount ${c(cpu.mountWrite)}; ${clients} clients server ${c(cpu.serverClients)} mounts ${c(cpu.mountClients)}`)
    rows.push({bench: 'server-rss', metric: `server peak RSS with ${clients} clients writing (MB, ${peak.method})`, remote: peak.peakMB, target: '< 300', met: peak.peakMB < 300})
    say(`clients: aggregate ${aggregate.toFixed(1)} MB/s, one alone ${single.toFixed(1)} MB/s, server peak RSS ${peak.peakMB} MB (load ${load()})`)
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
  if (values.json) await writeFile(values.json, JSON.stringify({date: new Date().toISOString(), smoke, sizeMiB, files, clients, clientMiB, loadBefore, loadAfter, rows}, null, 2))
  return 0
}

main().then(code => process.exit(code), error => {
  process.stderr.write(`${(error as Error).stack ?? error}\n`)
  process.exit(2)
})
