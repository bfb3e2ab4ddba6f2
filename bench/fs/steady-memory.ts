/**
 * A server's steady state before a write is timed: memory full of clean page
 * cache, so that the pages a write needs are reclaimed from it, for every run
 * alike. This machine is a VM that hands memory freed by the guest back to
 * its host (virtio-balloon free page reporting): touching such a page again
 * costs a fault in the host. Measured with plain buffered 1 MiB writes of a
 * new 4 GiB file (no PacioFS): 0.24-0.42 s of system time per GiB right after
 * the same amount was freed, 1.04-1.58 s 20 s later. A run that needs less
 * than the recently freed memory (one client writing 1 GiB) then writes at
 * a discount that a run needing more (8 clients' 8 GiB and their versions)
 * does not get; a server that has been up a while has its memory in the page
 * cache and reclaims from it instead.
 */
import {readFile, rm} from 'node:fs/promises'
import {join} from 'node:path'
import {run, runOk} from '../../test/helpers/exec.js'

/** /proc/meminfo's field, in MiB. */
export async function meminfoMiB(field: string): Promise<number> {
  const text = await readFile('/proc/meminfo', 'utf8')
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)
  if (!m) throw new Error(`no ${field} in /proc/meminfo`)
  return Math.floor(Number(m[1]) / 1024)
}

/** /proc/vmstat's counters. */
export async function vmstat(): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const line of (await readFile('/proc/vmstat', 'utf8')).split('\n')) {
    const [k, v] = line.split(' ')
    if (k && v) out[k] = Number(v)
  }

  return out
}

/** The reclaim done between two vmstat()s, in MiB: by kswapd, and directly by the processes that allocated (which then wait for it). */
export function reclaimed(a: Record<string, number>, b: Record<string, number>): string {
  const mib = (k: string) => Math.round((((b[k] ?? 0) - (a[k] ?? 0)) * 4096) / 1048576)
  return `reclaimed by kswapd ${mib('pgsteal_kswapd')} MiB, directly ${mib('pgsteal_direct')} MiB (${(b.allocstall_normal ?? 0) + (b.allocstall_movable ?? 0) - (a.allocstall_normal ?? 0) - (a.allocstall_movable ?? 0)} stalls)`
}

export interface PageCacheFill {
  /** MiB written into the filler file */
  filledMiB: number
  /** seconds it took, sync included */
  seconds: number
  /** removes the filler file (its pages are freed) */
  remove(): Promise<void>
}

/**
 * Writes files of all but `leaveMiB` of the free memory in `dir` and syncs
 * them: their pages stay in the page cache, clean, and are the first to be
 * reclaimed (the oldest) when a timed run needs memory. The kernel frees
 * some memory of its own while a file is written (up to 3 GiB was free again
 * after one pass here), so it goes on, a file a pass, until at most
 * `leaveMiB` + 512 MiB are free (at most 4 passes).
 */
export async function fillPageCache(dir: string, leaveMiB = 256): Promise<PageCacheFill> {
  const files: string[] = []
  let filledMiB = 0
  const t0 = performance.now()
  for (let pass = 0; pass < 4; pass++) {
    const n = (await meminfoMiB('MemFree')) - leaveMiB
    if (n <= 512) break
    const file = join(dir, `page-cache-filler-${pass}`)
    files.push(file)
    await runOk('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', `count=${n}`, 'status=none'], {timeoutMs: 600_000})
    await run('sync', [], {timeoutMs: 600_000})
    filledMiB += n
  }

  return {filledMiB, seconds: (performance.now() - t0) / 1000, remove: async () => void (await Promise.all(files.map(f => rm(f, {force: true}))))}
}
