/**
 * Replica servers (`paciofs join`) on loopback, each party in its own process.
 *
 *   node --import tsx bench/replica.ts [--smoke] [--size MIB] [--writes N] [--write-kib KIB] [--json out.json]
 *
 * lag       a writer (in this process, the remote Volume API without FUSE)
 *           creates N files of WRITE-KIB each on the primary, one after the
 *           other, each fsync'ed (acknowledged = committed on the primary's
 *           ledger); a watcher polls the replica's backing directory every
 *           2 ms. Lag = the file complete on the replica minus fsync returned
 *           on the writer. p50 / p99 / max.
 * catch-up  a volume of SIZE MiB (files of 8 MiB, filled in-process through
 *           the volume stack, with history) is served; a new replica joins and
 *           the time until it has applied the primary's head is taken, next
 *           to `rsync -a` of the same backing directory (files, ledger,
 *           journal, history) run before and after it. Ratio = rsync time /
 *           join time (target >= 0.5x).
 * --smoke runs both once, tiny (the test suite does, so this file cannot rot).
 */
import {spawnSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {constants as C, readFileSync, statSync} from 'node:fs'
import {mkdtemp, writeFile} from 'node:fs/promises'
import {loadavg, tmpdir} from 'node:os'
import {join} from 'node:path'
import {parseArgs} from 'node:util'
import {openVolumeStack} from '../src/app/stack.js'
import {loadOrCreateIdentity} from '../src/app/identity.js'
import {Connection} from '../src/remote/connection.js'
import {RemoteVolume} from '../src/remote/remote-volume.js'
import {startServe, type Served} from '../test/helpers/remote.js'
import {startJoin, waitInSync, type Replica} from '../test/helpers/replica.js'
import {runStatus} from '../src/app/status.js'
import {removeTree} from '../test/helpers/tmp.js'
import {benchArgs} from './args.js'

const say = (s: string) => process.stderr.write(`[bench] ${s}\n`)
const load = () => loadavg().map(l => l.toFixed(1)).join(' ')
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]
}

const caller = {uid: 0, gid: 0, pid: process.pid}

async function lagBench(root: string, config: string, writes: number, kib: number) {
  const vol = join(root, 'lag-vol')
  let primary: Served | undefined
  let rep: Replica | undefined
  let conn: Connection | undefined
  try {
    primary = await startServe([vol], {configDir: config, extraArgs: ['--accept', 'any']})
    rep = await startJoin(primary.address, 'lag-vol', join(root, 'lag-rep'), {configDir: join(root, 'server1')})
    process.env.PACIOFS_CONFIG_DIR = config
    conn = new Connection({server: primary.address, volume: 'lag-vol', identity: loadOrCreateIdentity(), knownServersFile: join(config, 'known-servers.json')})
    await conn.connect()
    const v = new RemoteVolume(conn)
    const lags: number[] = []
    const data = randomBytes(kib * 1024)
    const started = performance.now()
    for (let i = 0; i < writes; i++) {
      const p = `/w${i}`
      const fh = await v.create(p, 0o100644, C.O_WRONLY, caller)
      await v.write(p, fh, data, data.length, 0, caller)
      await v.fsync(p, fh, false)
      const acked = performance.now()
      await v.release(p, fh)
      const file = join(rep.dir, p)
      for (;;) {
        let size = -1
        try {
          size = statSync(file).size
        } catch { /* not yet */ }
        if (size === data.length) break
        if (performance.now() - acked > 30_000) throw new Error(`${p} did not reach the replica within 30 s`)
        await new Promise(r => setTimeout(r, 2))
      }

      lags.push(performance.now() - acked)
    }

    const seconds = (performance.now() - started) / 1000
    await v.close()
    return {writes, kib, seconds, perSecond: writes / seconds, p50: pct(lags, 50), p99: pct(lags, 99), max: Math.max(...lags)}
  } finally {
    conn?.close()
    await rep?.stop().catch(() => rep?.kill())
    await primary?.stop().catch(() => primary?.kill())
  }
}

async function fill(dir: string, config: string, mib: number): Promise<void> {
  process.env.PACIOFS_CONFIG_DIR = config // the fill's records are made by the identity `serve` runs as (the volume's first member)
  const stack = await openVolumeStack(dir, {create: true, purpose: 'bench fill', history: true})
  try {
    const buf = randomBytes(1024 * 1024)
    const perFile = 8
    for (let f = 0; f * perFile < mib; f++) {
      const p = `/f${f}`
      const fh = await stack.volume.create(p, 0o100644, C.O_WRONLY, caller)
      for (let m = 0; m < Math.min(perFile, mib - f * perFile); m++) {
        for (let c = 0; c < 4; c++) buf.writeUInt32BE(f * perFile + m, c * 256 * 1024) // every 256 KiB chunk differs: nothing deduplicated
        await stack.volume.write(p, fh, buf, buf.length, m * buf.length, caller)
      }

      await stack.volume.release(p, fh)
    }

    await stack.volume.sync()
  } finally {
    await stack.close()
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc (0 if it is gone); `sys`: the system part. */
function cpuSeconds(pid: number | undefined): number
function cpuSeconds(pid: number | undefined, part: 'sys'): number
function cpuSeconds(pid: number | undefined, part?: 'sys'): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
    return ((part === 'sys' ? 0 : Number(f[11])) + Number(f[12])) / 100 // utime, stime in clock ticks (USER_HZ = 100 on Linux)
  } catch {
    return 0
  }
}

/** rsync -a from -> to (a fresh copy): wall ms and the CPU seconds of its processes. */
function rsync(from: string, to: string): {ms: number; cpu: number; sys: number} {
  spawnSync('rm', ['-rf', to])
  const t = performance.now()
  // bash's `times` prints the CPU time of its children (rsync's sender, receiver and generator)
  const r = spawnSync('bash', ['-c', 'rsync -a "$0/" "$1/" && times', from, to])
  if (r.status !== 0) throw new Error(`rsync failed: ${r.stderr}`)
  const ms = performance.now() - t
  const [user, sys] = [...r.stdout.toString().trim().split('\n').pop()!.matchAll(/(\d+)m([\d.]+)s/g)].map(m => Number(m[1]) * 60 + Number(m[2]))
  spawnSync('rm', ['-rf', to])
  return {ms, cpu: user + sys, sys}
}

async function catchUpBench(root: string, config: string, mib: number) {
  const vol = join(root, 'cu-vol')
  say(`filling ${mib} MiB`)
  await fill(vol, config, mib)
  spawnSync('sync')
  const du = Number(spawnSync('du', ['-sb', vol]).stdout.toString().split('\t')[0])
  const rsync1 = rsync(vol, join(root, 'rsync-copy'))
  let primary: Served | undefined
  let rep: Replica | undefined
  let joinMs = 0
  let startMs = 0
  let cpu = {primary: 0, replica: 0, primarySys: 0, replicaSys: 0}
  try {
    primary = await startServe([vol], {configDir: config, extraArgs: ['--accept', 'any']})
    process.env.PACIOFS_CONFIG_DIR = config // runStatus pins the servers in this config's known-servers
    const head = (await runStatus({server: primary.address, volume: 'cu-vol'})).head
    const cpu0 = cpuSeconds(primary.child.pid)
    const sys0 = cpuSeconds(primary.child.pid, 'sys')
    const t = performance.now()
    rep = await startJoin(primary.address, 'cu-vol', join(root, 'cu-rep'), {configDir: join(root, 'server2')})
    const following = performance.now() // the process is up, accepted, and follows
    for (;;) {
      if ((await runStatus({server: rep.address, volume: 'cu-vol'})).head >= head) break
      if (performance.now() - t > 3_600_000) throw new Error('catch-up did not finish within an hour')
      await new Promise(r => setTimeout(r, 50))
    }

    joinMs = performance.now() - following
    startMs = following - t
    cpu = {primary: cpuSeconds(primary.child.pid) - cpu0, replica: cpuSeconds(rep.child.pid),
      primarySys: cpuSeconds(primary.child.pid, 'sys') - sys0, replicaSys: cpuSeconds(rep.child.pid, 'sys')}
    await waitInSync(primary.address, 'cu-vol', config)
  } finally {
    await rep?.stop().catch(() => rep?.kill())
    if (process.env.PACIOFS_REPLICA_TIMING && rep) say(`replica: ${/timing \(ms\): .*/.exec(rep.output())?.[0] ?? '(no timing line)'}`)
    await primary?.stop().catch(() => primary?.kill())
  }

  spawnSync('rm', ['-rf', join(root, 'cu-rep')])
  const rsync2 = rsync(vol, join(root, 'rsync-copy'))
  const rsyncMs = (rsync1.ms + rsync2.ms) / 2
  return {mib, backingBytes: du, joinMs, startMs, rsyncMs: [rsync1.ms, rsync2.ms], joinMiBs: mib / (joinMs / 1000), rsyncMiBs: mib / (rsyncMs / 1000), ratio: rsyncMs / joinMs,
    cpu: {...cpu, rsync: (rsync1.cpu + rsync2.cpu) / 2, rsyncSys: (rsync1.sys + rsync2.sys) / 2}}
}

async function main(): Promise<number> {
  const {values} = benchArgs(import.meta.url, () => parseArgs({options: {
    smoke: {type: 'boolean', default: false}, size: {type: 'string'}, writes: {type: 'string'}, 'write-kib': {type: 'string'}, json: {type: 'string'},
    skip: {type: 'string'},
  }}))
  const smoke = values.smoke!
  const mib = Number(values.size ?? (smoke ? 16 : 2048))
  const writes = Number(values.writes ?? (smoke ? 10 : 300))
  const kib = Number(values['write-kib'] ?? 16)
  const root = await mkdtemp(join(tmpdir(), 'paciofs-bench-replica-'))
  const config = join(root, 'config')
  const loadStart = load()
  try {
    say(`load ${loadStart}`)
    const lag = values.skip === 'lag' ? undefined : await lagBench(root, config, writes, kib)
    if (lag) say(`lag: p50 ${lag.p50.toFixed(1)} ms, p99 ${lag.p99.toFixed(1)} ms`)
    const cu = values.skip === 'catchup' ? undefined : await catchUpBench(root, config, mib)
    const loadEnd = load()
    process.stdout.write(`\nload average (1/5/15 min): ${loadStart} at the start, ${loadEnd} at the end\n\n`)
    process.stdout.write('| benchmark | figure | value | baseline | ratio | target | met |\n|---|---|--:|--:|--:|---|---|\n')
    if (lag) {
      process.stdout.write(`| lag | ${lag.writes} files x ${lag.kib} KiB, fsync each (${lag.perSecond.toFixed(1)}/s): commit on primary -> complete on replica, p50 | ${lag.p50.toFixed(1)} ms | | | | |\n`)
      process.stdout.write(`| lag | same, p99 (max ${lag.max.toFixed(1)} ms) | ${lag.p99.toFixed(1)} ms | | | | |\n`)
    }

    if (cu) {
      process.stdout.write(`| catch-up | new replica of a ${cu.mib} MiB volume (${(cu.backingBytes / 2 ** 20).toFixed(0)} MiB backing dir) | ${cu.joinMiBs.toFixed(1)} MiB/s (${(cu.joinMs / 1000).toFixed(1)} s following; start-up and join ${(cu.startMs / 1000).toFixed(1)} s before) | ${cu.rsyncMiBs.toFixed(1)} MiB/s rsync -a (${(cu.rsyncMs[0] / 1000).toFixed(1)} / ${(cu.rsyncMs[1] / 1000).toFixed(1)} s) | ${cu.ratio.toFixed(2)}x | >= 0.5x | ${cu.ratio >= 0.5 ? 'yes' : 'no'} |\n`)
      process.stdout.write(`| catch-up | CPU seconds (user + system): primary while serving it, replica process from its start | ${cu.cpu.primary.toFixed(1)} + ${cu.cpu.replica.toFixed(1)} s (system ${cu.cpu.primarySys.toFixed(1)} + ${cu.cpu.replicaSys.toFixed(1)}) | ${cu.cpu.rsync.toFixed(1)} s rsync -a (system ${cu.cpu.rsyncSys.toFixed(1)}) | | | |\n`)
    }

    if (values.json) await writeFile(values.json, JSON.stringify({smoke, loadStart, loadEnd, lag, catchUp: cu}, null, 2))
    return 0
  } finally {
    await removeTree(root)
  }
}

main().then(code => process.exit(code), error => {
  process.stderr.write(`${(error as Error).stack ?? error}\n`)
  process.exit(1)
})
