/**
 * Before a read is timed: let the volumes finish what the write left them
 * (the version of the file just written is read back and stored behind the
 * writer's close, on the local mount and on the server alike), then write
 * every dirty page and drop the page cache, so that each read starts cold
 * and alone. Without this the local mount's read of a 1 GiB file ran at
 * 272-1,341 MB/s between runs: sometimes beside its own capture (both read
 * the disk), sometimes after the capture had put the file back into the page
 * cache that had just been dropped.
 */
import {readdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {run} from '../../test/helpers/exec.js'
import {cpuSample} from './proc.js'

/** CPU seconds (all threads) of each pid, 0 for one that is gone. */
export async function cpuSeconds(pids: number[]): Promise<number[]> {
  return Promise.all(pids.map(p => cpuSample(p).then(s => s.total, () => 0)))
}

async function pendingCaptures(volumeDirs: string[]): Promise<number> {
  let n = 0
  for (const d of volumeDirs) n += (await readdir(join(d, '.paciofs', 'history', 'pending')).catch(() => [])).length
  return n
}

export interface QuietResult {
  /** waited this long, ms */
  waitedMs: number
  /** false: still busy when the time was up (the read is timed all the same) */
  quiet: boolean
}

/**
 * Waits until no capture is pending in `volumeDirs` and the processes `pids`
 * used under `idleCpu` CPU seconds together over one `stepMs` interval (at
 * most `maxMs`), then syncs and drops the page cache (root only; otherwise
 * the cache stays, for both sides alike).
 */
export async function quietThenCold(pids: number[], volumeDirs: string[], opts: {maxMs?: number; stepMs?: number; idleCpu?: number} = {}): Promise<QuietResult> {
  const q = await quiet(pids, volumeDirs, opts)
  await writeFile('/proc/sys/vm/drop_caches', '3').catch(() => {})
  return q
}

/** quietThenCold without dropping the page cache: waits for quiet, then `sync`. */
export async function quiet(pids: number[], volumeDirs: string[], opts: {maxMs?: number; stepMs?: number; idleCpu?: number} = {}): Promise<QuietResult> {
  const t0 = performance.now()
  const step = opts.stepMs ?? 1000
  let idle = false
  let before = await cpuSeconds(pids)
  while (performance.now() - t0 < (opts.maxMs ?? 300_000)) {
    await new Promise(resolve => setTimeout(resolve, step))
    const now = await cpuSeconds(pids)
    const used = now.reduce((s, c, i) => s + Math.max(0, c - before[i]), 0)
    before = now
    if (used < (opts.idleCpu ?? 0.05) && (await pendingCaptures(volumeDirs)) === 0) {
      idle = true
      break
    }
  }

  await run('sync', [], {timeoutMs: 300_000})
  return {waitedMs: Math.round(performance.now() - t0), quiet: idle}
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}
