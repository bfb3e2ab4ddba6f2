/**
 * A local `multichaind` owned by a PacioFS process: created in (and run
 * from) a data directory inside the volume's state dir, listening on
 * loopback on fresh ports, answered before start() resolves, and stopped
 * again — by stop(), by an exit handler, and, should this process die
 * without running either (SIGKILL), by a small watchdog that ends the node
 * when its owner is gone. A node another PacioFS process started for the same
 * volume (a mount, while `log` runs) is used as it is and left running.
 */
import {spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import {PacioError} from '../../errors.js'
import {RpcClient, type RpcConfig} from './rpc.js'
import {pidAlive} from '../../process.js'

export const INSTALL_HINT = 'install MultiChain (https://www.multichain.com/download-install/): download and unpack the Linux release, then copy multichaind, multichain-cli and multichain-util to /usr/local/bin'

function onPath(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue
    const p = path.join(dir, bin)
    try {
      fs.accessSync(p, fs.constants.X_OK)
      return p
    } catch { /* next */ }
  }
  return undefined
}

export function findBinaries(): {daemon: string; util: string} {
  const daemon = onPath('multichaind')
  const util = onPath('multichain-util')
  if (!daemon || !util) {
    throw new PacioError('EINPUT', `MultiChain is not installed: ${[!daemon && 'multichaind', !util && 'multichain-util'].filter(Boolean).join(' and ')} not found on PATH`, {suggestion: INSTALL_HINT})
  }
  return {daemon, util}
}

/** A free TCP port on loopback. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const {port} = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
  })
}

/** Sets `key = value` lines of a chain's params.dat (only keys it has). */
export function setParams(file: string, params: Record<string, string | number | boolean>): void {
  let text = fs.readFileSync(file, 'utf8')
  for (const [k, v] of Object.entries(params)) text = text.replace(new RegExp(`^(${k}\\s*=\\s*)[^\\s#]*`, 'm'), `$1${String(v)}`)
  fs.writeFileSync(file, text)
}

/** Creates a chain with multichain-util in datadir; block time in seconds. */
export function createChain(datadir: string, chain: string, opts: {blockTimeS?: number} = {}): void {
  const {util} = findBinaries()
  fs.mkdirSync(datadir, {recursive: true, mode: 0o700})
  const r = spawnSync(util, ['create', chain, `-datadir=${datadir}`], {encoding: 'utf8'})
  if (r.status !== 0) throw new PacioError('ELEDGER', `multichain-util create ${chain} failed: ${(r.stderr || r.stdout || '').trim().slice(-500)}`)
  setParams(path.join(datadir, chain, 'params.dat'), {
    'target-block-time': opts.blockTimeS ?? 2,
    'max-std-tx-size': 8_388_608,
    'max-std-op-return-size': 4_194_304,
    'maximum-block-size': 16_777_216,
  })
}

interface NodeFile {
  pid: number
  owner: number
  rpcport: number
  port: number
  user: string
  pass: string
  chain: string
}

function isMultichaind(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('multichaind')
  } catch {
    return false
  }
}

export interface LocalNode {
  rpc: RpcConfig
  /** true when this process started the node (and stop() ends it) */
  owned: boolean
  pid: number
  stop(): Promise<void>
}

export interface StartOptions {
  datadir: string
  chain: string
  /** CHAIN@HOST:PORT of a node to join through (first start of a joining node) */
  connect?: string
  /** how long to wait for the node to answer (ms, default 120 s) */
  timeoutMs?: number
  /** network and RPC ports and RPC password (default: fresh ports, a random password) */
  fixed?: {port: number; rpcport: number; pass: string}
}

const running = new Set<ChildProcess>()
let exitHook = false

function hookExit(): void {
  if (exitHook) return
  exitHook = true
  process.on('exit', () => {
    for (const c of running) try {
      c.kill('SIGTERM')
    } catch { /* gone */ }
  })
}

/** The node of datadir/chain: the one already running for it, or a new one this process owns. */
export async function startNode(opts: StartOptions): Promise<LocalNode> {
  const nodeFile = path.join(opts.datadir, 'paciofs-node.json')
  try {
    const f = JSON.parse(fs.readFileSync(nodeFile, 'utf8')) as NodeFile
    if (pidAlive(f.pid) && isMultichaind(f.pid)) {
      const rpc = {host: '127.0.0.1', port: f.rpcport, user: f.user, pass: f.pass, chain: f.chain}
      const ok = await new RpcClient(rpc, 5000).call('getinfo').then(() => true, () => false)
      if (ok) return {rpc, owned: false, pid: f.pid, stop: async () => {}}
      if (!pidAlive(f.owner)) process.kill(f.pid, 'SIGTERM') // an orphan of a process that died: end it
    }
  } catch { /* no node running */ }

  const {daemon} = findBinaries()
  const [port, rpcport] = opts.fixed ? [opts.fixed.port, opts.fixed.rpcport] : [await freePort(), await freePort()]
  const user = 'paciofs'
  const pass = opts.fixed?.pass ?? randomBytes(16).toString('hex')
  const args = [opts.connect ?? opts.chain, `-datadir=${opts.datadir}`, `-port=${port}`, `-rpcport=${rpcport}`, `-rpcuser=${user}`, `-rpcpassword=${pass}`,
    '-rpcallowip=127.0.0.1', '-rpcbind=127.0.0.1', '-bind=127.0.0.1', '-daemon=0', '-printtoconsole=1']
  fs.mkdirSync(opts.datadir, {recursive: true, mode: 0o700})
  // its own process group: a Ctrl-C meant for paciofs must not stop the node before paciofs has committed
  const child = spawn(daemon, args, {stdio: ['ignore', 'pipe', 'pipe'], detached: true})
  running.add(child)
  hookExit()
  let output = ''
  const keep = (d: Buffer) => {
    output = (output + d.toString()).slice(-4000)
  }
  child.stdout!.on('data', keep)
  child.stderr!.on('data', keep)
  let exited: number | null | undefined
  const gone = new Promise<void>(resolve => child.once('exit', code => {
    exited = code
    running.delete(child)
    resolve()
  }))
  // the watchdog: ends the node within a few seconds of this process dying, however it dies
  const watchdog = spawn('sh', ['-c', `while kill -0 ${process.pid} 2>/dev/null && kill -0 ${child.pid} 2>/dev/null; do sleep 1; done; kill -TERM ${child.pid} 2>/dev/null; sleep 20; kill -KILL ${child.pid} 2>/dev/null`],
    {detached: true, stdio: 'ignore'})
  watchdog.unref()
  const rpc = {host: '127.0.0.1', port: rpcport, user, pass, chain: opts.chain}
  const stop = async () => {
    if (exited === undefined) {
      await new RpcClient(rpc, 5000).call('stop').catch(() => child.kill('SIGTERM'))
      const t1 = setTimeout(() => child.kill('SIGTERM'), 30_000)
      const t2 = setTimeout(() => child.kill('SIGKILL'), 45_000)
      await gone
      clearTimeout(t1)
      clearTimeout(t2)
    }
    try {
      if (watchdog.pid) process.kill(watchdog.pid, 'SIGTERM')
    } catch { /* gone */ }
    fs.rmSync(nodeFile, {force: true})
  }

  const client = new RpcClient(rpc, 5000)
  const until = Date.now() + (opts.timeoutMs ?? 120_000)
  for (;;) {
    if (exited !== undefined) {
      await stop()
      const grant = /grant\s+(\S+)\s+connect/.exec(output)
      throw new PacioError('ELEDGER', `multichaind ${opts.connect ?? opts.chain} exited (status ${exited}) before it answered: ${output.trim().split('\n').slice(-6).join(' | ')}`,
        {suggestion: grant ? `ask an admin of the chain to run: multichain-cli ${opts.chain} grant ${grant[1]} connect,send,receive` : undefined})
    }
    if (await client.call('getinfo').then(() => true, () => false)) break
    if (Date.now() > until) {
      await stop()
      throw new PacioError('ELEDGER', `multichaind ${opts.chain} did not answer within ${(opts.timeoutMs ?? 120_000) / 1000}s: ${output.trim().split('\n').slice(-4).join(' | ')}`)
    }
    await new Promise(resolve => setTimeout(resolve, 250))
  }
  const file: NodeFile = {pid: child.pid!, owner: process.pid, rpcport, port, user, pass, chain: opts.chain}
  fs.writeFileSync(nodeFile, JSON.stringify(file), {mode: 0o600})
  return {rpc, owned: true, pid: child.pid!, stop}
}
