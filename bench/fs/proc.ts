/**
 * What a server process costs, read from /proc: CPU time of its main thread
 * (the event loop, where every FUSE callback of a node server runs) and of
 * the whole process, and its peak resident set size.
 */
import {readFile, writeFile} from 'node:fs/promises'
import {spawnSync} from 'node:child_process'

const TICKS = Number(spawnSync('getconf', ['CLK_TCK'], {encoding: 'utf8'}).stdout.trim()) || 100

/** utime+stime in seconds of one /proc/.../stat line. */
function cpuOfStat(text: string): number {
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) / TICKS // fields 14 and 15 of proc(5)
}

export interface CpuSample {
  main: number
  total: number
  at: number
}

export async function cpuSample(pid: number): Promise<CpuSample> {
  const at = performance.now()
  const main = cpuOfStat(await readFile(`/proc/${pid}/task/${pid}/stat`, 'utf8'))
  const total = cpuOfStat(await readFile(`/proc/${pid}/stat`, 'utf8'))
  return {main, total, at}
}

export interface CpuUse {
  /** CPU seconds of the main thread / wall seconds, in % (100 = the event loop never idles). */
  mainPct: number
  /** CPU seconds of all threads / wall seconds, in % (200 = both cores of this machine). */
  totalPct: number
}

export function cpuUse(a: CpuSample, b: CpuSample): CpuUse {
  const wall = Math.max(1e-3, (b.at - a.at) / 1000)
  return {mainPct: Math.round((100 * (b.main - a.main)) / wall), totalPct: Math.round((100 * (b.total - a.total)) / wall)}
}

async function statusKb(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(await readFile(`/proc/${pid}/status`, 'utf8'))
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`)
  return Number(m[1])
}

export interface PeakRss {
  /** Peak RSS in MB (10^6 bytes) over the watched interval. */
  peakMB: number
  /** How: the kernel's VmHWM after resetting it (clear_refs 5), or sampling VmRSS every 50 ms. */
  method: 'VmHWM' | 'sampled VmRSS'
  /** RSS when the watch started and ended, MB. */
  startMB: number
  endMB: number
}

const mb = (kb: number) => Math.round((kb * 1024) / 1e5) / 10

/**
 * Watches one process's peak RSS over an interval: resets its high-water
 * mark (root can write 5 to /proc/PID/clear_refs) and also samples VmRSS, as
 * a fallback where the reset is not allowed.
 */
export async function watchRss(pid: number): Promise<{stop(): Promise<PeakRss>}> {
  const reset = await writeFile(`/proc/${pid}/clear_refs`, '5').then(() => true, () => false)
  const startKb = await statusKb(pid, 'VmRSS')
  let maxKb = startKb
  const timer = setInterval(() => {
    statusKb(pid, 'VmRSS').then((kb) => (maxKb = Math.max(maxKb, kb)), () => {})
  }, 50)
  return {
    async stop() {
      clearInterval(timer)
      const endKb = await statusKb(pid, 'VmRSS')
      maxKb = Math.max(maxKb, endKb)
      const peakKb = reset ? Math.max(maxKb, await statusKb(pid, 'VmHWM')) : maxKb
      return {peakMB: mb(peakKb), method: reset ? 'VmHWM' : 'sampled VmRSS', startMB: mb(startKb), endMB: mb(endKb)}
    },
  }
}

