// `paciofs serve` for tests: runs in a child process on a free loopback port,
// and is always stopped again (also on failure). Remote mounts use
// mountPacio with --server (separate processes as well).
import type {ChildProcess} from 'node:child_process'
import {join} from 'node:path'
import {startServerChild} from './child.js'
import type {RunResult} from './exec.js'
import {BIN, NODE_ARGS, mountPacio, paciofs, type PacioMount} from './paciofs.js'

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
  const args = [...NODE_ARGS, BIN, 'serve', ...volumes.flatMap(v => ['--volume', v]), '--port', String(opts.port ?? 0), '--state', opts.stateDir ?? join(opts.configDir, 'server'), ...(opts.extraArgs ?? [])]
  const c = await startServerChild(args, opts.configDir, /serving on [^\s]+:(\d+)/, 'paciofs serve', 30_000)
  const port = Number(/serving on [^\s]+:(\d+)/.exec(c.output())![1])
  return {...c, address: `127.0.0.1:${port}`, port}
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
