/**
 * fio runs, parsed from `--output-format=json`. The job's bandwidth covers
 * its runtime, which (checked with fio 3.33) includes the final fsync of
 * `--end_fsync=1`.
 */
import {describeCommand, run} from '../../test/helpers/exec.js'

export interface FioResult {
  command: string
  readBytesPerSec: number
  writeBytesPerSec: number
  readIops: number
  writeIops: number
  runtimeMs: number
  /** Wall time of the whole fio process (file layout included), ms. */
  wallMs: number
  /** fio's notes on stderr (e.g. "fallocate not supported"), if any. */
  warnings: string
}

interface FioDir {
  bw_bytes: number
  iops: number
  runtime: number
}

/** Runs fio with `args` plus `--directory=DIR --output-format=json`. */
export async function fio(dir: string, args: string[], timeoutMs: number): Promise<FioResult> {
  const full = ['fio', ...args, `--directory=${dir}`, '--output-format=json']
  const t0 = performance.now()
  const res = await run(full[0], full.slice(1), {timeoutMs})
  const wallMs = performance.now() - t0
  const command = describeCommand(full[0], full.slice(1))
  if (res.code !== 0) throw new Error(`\`${command}\` failed (${res.code}): ${res.stderr.trim() || res.stdout.slice(0, 2000)}`)
  const start = res.stdout.indexOf('{')
  const job = (JSON.parse(res.stdout.slice(start)) as {jobs: Array<{read: FioDir; write: FioDir; error: number}>}).jobs[0]
  if (job.error) throw new Error(`\`${command}\`: job error ${job.error}\n${res.stderr}`)
  return {
    command,
    readBytesPerSec: job.read.bw_bytes,
    writeBytesPerSec: job.write.bw_bytes,
    readIops: job.read.iops,
    writeIops: job.write.iops,
    runtimeMs: Math.max(job.read.runtime, job.write.runtime),
    wallMs,
    warnings: (res.stderr + res.stdout.slice(0, start)).trim(),
  }
}
