/**
 * The three file systems measured side by side, all under one temp dir on
 * one disk: the raw directory (`disk`), `bindfs -o big_writes` over a
 * directory, and a PacioFS mount served by `paciofs mount` in a child process.
 * close() stops PacioFS (SIGTERM: it commits every record, then must exit 0),
 * unmounts bindfs, and lazily unmounts anything still mounted below the root.
 */
import {mkdir, readFile, readdir, readlink} from 'node:fs/promises'
import {join} from 'node:path'
import {fuseMountpoints, mountBindfs, type BindfsMount} from '../../test/helpers/bindfs.js'
import {run} from '../../test/helpers/exec.js'
import {mountPacio, type PacioMount} from '../../test/helpers/paciofs.js'

export type TargetName = 'disk' | 'bindfs' | 'paciofs'
export const TARGETS: readonly TargetName[] = ['disk', 'bindfs', 'paciofs']

export interface Target {
  readonly name: TargetName
  /** Where the benchmarks write. */
  readonly dir: string
}

export interface PacioServer extends Target {
  readonly name: 'paciofs'
  /** The node process that serves the mount (holds /dev/fuse), not a wrapper. */
  readonly pid: number
  readonly mount: PacioMount
}

export interface Targets {
  readonly all: Map<TargetName, Target>
  readonly pacio?: PacioServer
  close(): Promise<{paciofsExit: number | null | undefined; paciofsOutput: string}>
}

/** Mount points of FUSE file systems below `root` (ours, never anyone else's). */
export async function fuseMountsBelow(root: string): Promise<string[]> {
  return fuseMountpoints(await readFile('/proc/mounts', 'utf8')).filter((m) => m === root || m.startsWith(root + '/'))
}

/** Lazily unmounts whatever FUSE file system is still mounted below `root`. */
export async function unmountBelow(root: string): Promise<string[]> {
  const left = await fuseMountsBelow(root)
  for (const m of left) await run('fusermount', ['-uz', m])
  return left
}

export async function childrenOf(pid: number): Promise<number[]> {
  const out: number[] = []
  for (const tid of await readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
    const text = await readFile(`/proc/${pid}/task/${tid}/children`, 'utf8').catch(() => '')
    out.push(...text.split(/\s+/).filter(Boolean).map(Number))
  }
  return out
}

async function holdsDevFuse(pid: number): Promise<boolean> {
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
    if ((await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')) === '/dev/fuse') return true
  }
  return false
}

/**
 * The pid of the node process serving the mount: the first process in the
 * tree below `root` (itself included) that runs node and holds /dev/fuse.
 */
export async function servingNodePid(root: number): Promise<number> {
  const queue = [root]
  while (queue.length > 0) {
    const pid = queue.shift()!
    const exe = await readlink(`/proc/${pid}/exe`).catch(() => '')
    if (/\/node[^/]*$/.test(exe) && (await holdsDevFuse(pid))) return pid
    queue.push(...(await childrenOf(pid)))
  }
  throw new Error(`no node process holding /dev/fuse below pid ${root}`)
}

const servers = new Set<PacioServer>()

/** Stops every PacioFS server mounted by mountPacioAt (SIGTERM: clean unmount and commit). */
export async function stopAllPacio(): Promise<void> {
  for (const s of servers) await s.mount.stop().catch(() => s.mount.kill())
  servers.clear()
}

/** Pids of the child processes of this process that serve PacioFS (not to be killed with the workloads). */
export function pacioChildPids(): Set<number> {
  return new Set([...servers].map(s => s.mount.child.pid!))
}

/** Mounts a fresh PacioFS volume at ROOT/LABEL/mnt (volume ROOT/LABEL/vol). */
export async function mountPacioAt(root: string, label: string): Promise<PacioServer> {
  const base = join(root, label)
  const mount = await mountPacio(join(base, 'vol'), join(base, 'mnt'), {configDir: join(root, 'config'), extraArgs: ['-q']})
  servers.add({name: 'paciofs', dir: mount.mountpoint, pid: mount.child.pid!, mount})
  try {
    return {name: 'paciofs', dir: mount.mountpoint, pid: await servingNodePid(mount.child.pid!), mount}
  } catch (e) {
    await mount.kill()
    throw e
  }
}

/**
 * Sets up the requested targets under `root`. bindfs' helper makes its
 * directories under os.tmpdir(), so the caller points TMPDIR at `root`.
 */
export async function openTargets(root: string, names: readonly TargetName[]): Promise<Targets> {
  const all = new Map<TargetName, Target>()
  let bindfs: BindfsMount | undefined
  let pacio: PacioServer | undefined
  const close = async () => {
    let paciofsExit: number | null | undefined
    const paciofsOutput = pacio?.mount.output() ?? ''
    if (pacio) paciofsExit = await pacio.mount.stop()
    await bindfs?.unmount()
    await unmountBelow(root)
    return {paciofsExit, paciofsOutput: pacio?.mount.output() ?? paciofsOutput}
  }

  try {
    if (names.includes('disk')) {
      const dir = join(root, 'disk')
      await mkdir(dir, {recursive: true})
      all.set('disk', {name: 'disk', dir})
    }

    if (names.includes('bindfs')) {
      bindfs = await mountBindfs(['big_writes'])
      all.set('bindfs', {name: 'bindfs', dir: bindfs.mountpoint})
    }

    if (names.includes('paciofs')) {
      pacio = await mountPacioAt(root, 'paciofs')
      all.set('paciofs', pacio)
    }
  } catch (e) {
    await close().catch(() => {})
    throw e
  }

  return {all, pacio, close}
}
