// PacioFS mounts for tests: `paciofs mount` runs in a child process (never
// in the test process: a FUSE server must not be touched synchronously by the
// process that serves it), and is always unmounted again, also on failure.
import {spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {mkdir} from 'node:fs/promises'
import {join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {childEnv, run, type RunResult} from './exec.js'
import {isFuseMounted} from './bindfs.js'
import {makeTempDir, removeTree} from './tmp.js'

export const REPO = resolve(fileURLToPath(import.meta.url), '..', '..', '..')
export const BIN = join(REPO, 'bin', 'run.js')
/** The node options on bin/run.js's first line (`#!/usr/bin/env -S node ...`): a child started as
 * `node ...NODE_ARGS BIN` runs as `./bin/run.js` or the installed `paciofs` does. */
export const NODE_ARGS = readFileSync(BIN, 'utf8').split('\n', 1)[0].replace(/^#!.*?\bnode\b/, '').trim().split(/\s+/).filter(Boolean)

const live = new Map<string, ChildProcess>()
process.on('exit', () => {
  for (const [mnt, child] of live) {
    child.kill('SIGKILL')
    spawnSync('fusermount', ['-uz', mnt], {stdio: 'ignore'})
  }
})

export interface PacioMount {
  readonly mountpoint: string
  readonly volume: string
  readonly child: ChildProcess
  output(): string
  /** SIGTERM, wait for a clean exit (code 0) and the mount to be gone. */
  stop(): Promise<number | null>
  /** SIGKILL the server, then lazily unmount what it left. */
  kill(): Promise<void>
}

/** Runs `paciofs ARGS` to completion (identity and config kept in the test's own dir). */
export function paciofs(args: string[], opts: {configDir?: string; cacheDir?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv} = {}): Promise<RunResult> {
  const env = childEnv({PACIOFS_CONFIG_DIR: opts.configDir ?? join(REPO, '.tmp', 'config'), PACIOFS_CACHE_DIR: opts.cacheDir ?? join(REPO, '.tmp', 'verify-cache'), ...opts.env})
  return run(process.execPath, [...NODE_ARGS, BIN, ...args], {env, timeoutMs: opts.timeoutMs ?? 60_000})
}

export async function mountPacio(volume: string, mountpoint: string, opts: {configDir?: string; extraArgs?: string[]; env?: NodeJS.ProcessEnv; upMs?: number} = {}): Promise<PacioMount> {
  await mkdir(mountpoint, {recursive: true})
  const child = spawn(process.execPath, [...(process.env.PACIOFS_MOUNT_NODE_ARGS?.split(' ').filter(Boolean) ?? []), ...NODE_ARGS, BIN, 'mount', mountpoint, '--volume', volume, ...(opts.extraArgs ?? [])], {
    env: childEnv({PACIOFS_CONFIG_DIR: opts.configDir ?? join(REPO, '.tmp', 'config'), ...opts.env}),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout!.on('data', d => (out += d))
  child.stderr!.on('data', d => (out += d))
  const exited = new Promise<number | null>(res => child.on('exit', code => res(code)))
  live.set(mountpoint, child)

  const deadline = Date.now() + (opts.upMs ?? 20_000)
  while (!(await isFuseMounted(mountpoint))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL')
      live.delete(mountpoint)
      throw new Error(`paciofs mount did not come up at ${mountpoint} (exit ${child.exitCode}):\n${out}`)
    }

    await new Promise(r => setTimeout(r, 25))
  }

  const cleanup = async () => {
    live.delete(mountpoint)
    if (await isFuseMounted(mountpoint)) await run('fusermount', ['-uz', mountpoint])
  }

  return {
    mountpoint, volume, child,
    output: () => out,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
      const code = await exited
      clearTimeout(timer)
      await cleanup()
      return code
    },
    async kill() {
      child.kill('SIGKILL')
      await exited
      await cleanup()
    },
  }
}

/** A scratch area: volume and mountpoint dirs, removed by dispose(). */
export async function scratch(label: string): Promise<{dir: string; volume: string; mnt: string; dispose(): Promise<void>}> {
  const dir = await makeTempDir(label)
  return {dir, volume: join(dir, 'vol'), mnt: join(dir, 'mnt'), dispose: () => removeTree(dir)}
}
