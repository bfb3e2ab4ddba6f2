// `paciofs join` for tests: a replica server in a child process on a free
// loopback port, always stopped again (also on failure); the group's status
// as JSON; and a comparison of two backing directories.
import type {ChildProcess} from 'node:child_process'
import {createHash} from 'node:crypto'
import {lstat, readdir, readFile, readlink} from 'node:fs/promises'
import {join} from 'node:path'
import {sys} from '../../src/volume/sys.js'
import {startServerChild} from './child.js'
import {BIN, NODE_ARGS, paciofs} from './paciofs.js'

export interface Replica {
  readonly address: string
  readonly child: ChildProcess
  readonly dir: string
  output(): string
  stop(): Promise<number | null>
  kill(): Promise<void>
}

export interface JoinOptions {
  configDir: string
  port?: number
  extraArgs?: string[]
  /** wait until it prints that it is a replica (false: return once it listens, e.g. while a vote is pending) */
  waitAccepted?: boolean
}

export async function startJoin(primary: string, volume: string, dir: string, opts: JoinOptions): Promise<Replica> {
  const args = [...NODE_ARGS, BIN, 'join', primary, '--volume', volume, '--dir', dir, '--port', String(opts.port ?? 0), '--state', join(opts.configDir, 'server'), ...(opts.extraArgs ?? [])]
  const want = opts.waitAccepted === false ? /asked to join|serving on/ : /serving on [^\s]+ \(read-only/
  const c = await startServerChild(args, opts.configDir, want, 'paciofs join', 60_000)
  const address = () => /serving on ([^\s]+) \(read-only/.exec(c.output())?.[1] ?? ''
  return {...c, dir, get address() {
    return address()
  }}
}

export interface StatusJson {
  role: string
  head: number
  primaryHead: number
  members: string[]
  servers: Array<{key: string; address: string; state: string; applied: number | null; lag: number | null}>
}

export async function status(server: string, volume: string, configDir: string): Promise<StatusJson> {
  const r = await paciofs(['status', '--server', server, '--volume', volume, '--json'], {configDir})
  if (r.code !== 0) throw new Error(`status failed: ${r.stderr}`)
  return JSON.parse(r.stdout) as StatusJson
}

/** Waits until every accepted replica (or the one given) has applied the primary's head, and the head stays put for `settleMs`. */
export async function waitInSync(primary: string, volume: string, configDir: string, opts: {key?: string; timeoutMs?: number; settleMs?: number} = {}): Promise<StatusJson> {
  const end = Date.now() + (opts.timeoutMs ?? 60_000)
  let last: StatusJson | undefined
  let sameSince = 0
  let lastHead = -1
  for (;;) {
    last = await status(primary, volume, configDir)
    const reps = last.servers.filter(s => s.state === 'accepted' && (!opts.key || s.key === opts.key))
    const inSync = reps.length > 0 && reps.every(s => s.applied === last!.head)
    if (last.head !== lastHead) {
      lastHead = last.head
      sameSince = Date.now()
    }

    if (inSync && Date.now() - sameSince >= (opts.settleMs ?? 0)) return last
    if (Date.now() > end) throw new Error(`replicas not in sync: ${JSON.stringify(last)}`)
    await new Promise(r => setTimeout(r, 200))
  }
}

/** path -> "type mode uid:gid size sha256|target xattrs" for a backing directory (without .paciofs). */
export async function treeOf(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  const walk = async (rel: string) => {
    for (const name of (await readdir(join(root, rel))).sort()) {
      if (rel === '' && name === '.paciofs') continue
      const p = rel ? `${rel}/${name}` : name
      const abs = join(root, p)
      const st = await lstat(abs)
      const kind = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other'
      let what = ''
      if (st.isFile()) what = createHash('sha256').update(await readFile(abs)).digest('hex')
      if (st.isSymbolicLink()) what = await readlink(abs)
      const xattrs = sys.llistxattr(abs).sort().map(n => `${n}=${createHash('sha256').update(sys.lgetxattr(abs, n)).digest('hex').slice(0, 12)}`).join(',')
      out.set(p, `${kind} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${st.isDirectory() ? '' : st.size} ${what} ${xattrs}`)
      if (st.isDirectory()) await walk(p)
    }
  }

  await walk('')
  return out
}
