// `paciofs serve` for tests: runs in a child process on a free loopback port,
// and is always stopped again (also on failure). Remote mounts use
// mountPacio with --server (separate processes as well).
import {spawn, type ChildProcess} from 'node:child_process'
import {join} from 'node:path'
import {childEnv, type RunResult} from './exec.js'
import {BIN, mountPacio, paciofs, type PacioMount} from './paciofs.js'

const live = new Set<ChildProcess>()
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL')
})

export interface Served {
  readonly address: string
  readonly port: number
  readonly child: ChildProcess
  output(): string
  /** SIGTERM; resolves with the exit code once the server is gone. */
  stop(): Promise<number | null>
  kill(): Promise<void>
}

export async function startServe(volumes: string[], opts: {configDir: string; stateDir?: string; port?: number; extraArgs?: string[]}): Promise<Served> {
  const args = [BIN, 'serve', ...volumes.flatMap(v => ['--volume', v]), '--port', String(opts.port ?? 0), '--state', opts.stateDir ?? join(opts.configDir, 'server'), ...(opts.extraArgs ?? [])]
  const child = spawn(process.execPath, args, {env: childEnv({PACIOFS_CONFIG_DIR: opts.configDir}), stdio: ['ignore', 'pipe', 'pipe']})
  live.add(child)
  let out = ''
  child.stdout!.on('data', d => (out += d))
  child.stderr!.on('data', d => (out += d))
  const exited = new Promise<number | null>(res => child.on('exit', code => {
    live.delete(child)
    res(code)
  }))
  const deadline = Date.now() + 30_000
  let port = 0
  for (;;) {
    const m = /serving on [^\s]+:(\d+)/.exec(out)
    if (m) {
      port = Number(m[1])
      break
    }

    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`paciofs serve did not come up (exit ${child.exitCode}):\n${out}`)
    }

    await new Promise(r => setTimeout(r, 25))
  }

  return {
    address: `127.0.0.1:${port}`, port, child,
    output: () => out,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
      const code = await exited
      clearTimeout(timer)
      return code
    },
    async kill() {
      if (child.exitCode === null) child.kill('SIGKILL')
      await exited
    },
  }
}

/** Mounts a served volume in a separate process (as the identity in configDir). */
export function mountRemote(server: Served | string, volume: string, mountpoint: string, opts: {configDir: string; extraArgs?: string[]}): Promise<PacioMount> {
  const address = typeof server === 'string' ? server : server.address
  return mountPacio(volume, mountpoint, {configDir: opts.configDir, extraArgs: ['--server', address, ...(opts.extraArgs ?? [])]})
}

/** The member key of the identity in configDir (created on first use). */
export async function memberKey(configDir: string): Promise<string> {
  const r = await paciofs(['member', 'key'], {configDir})
  if (r.code !== 0) throw new Error(`member key failed: ${r.stderr}`)
  return r.stdout.trim()
}

export function member(op: 'add' | 'remove' | 'list', args: string[], configDir: string): Promise<RunResult> {
  return paciofs(['member', op, ...args], {configDir})
}
