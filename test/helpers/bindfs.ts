// bindfs mounts for tests, with unmount guaranteed: explicitly by the caller,
// and as a last resort when the process exits (mocha --exit included).
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { runOk } from './exec.js';
import { makeTempDir, removeTree } from './tmp.js';

export interface BindfsMount {
  /** The plain directory bindfs serves. */
  readonly source: string;
  /** Where the FUSE file system is mounted. */
  readonly mountpoint: string;
  /** Lazily unmounts (`fusermount -uz`) and removes both directories. Idempotent. */
  unmount(): Promise<void>;
}

const live = new Set<string>();

/** Last resort, synchronous by necessity: the process is going away. */
function unmountAllNow(): void {
  for (const mountpoint of live) spawnSync('fusermount', ['-uz', mountpoint], { stdio: 'ignore' });
  live.clear();
}

process.on('exit', unmountAllNow);
// Mocha installs no signal handlers, so Ctrl-C or a kill would skip 'exit':
// unmount, then re-raise the signal with its default action.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    unmountAllNow();
    process.kill(process.pid, signal);
  });
}

/** Mount points of FUSE file systems currently in /proc/mounts. */
export function fuseMountpoints(mounts: string): string[] {
  return mounts
    .split('\n')
    .map((line) => line.split(' '))
    .filter((f) => f.length >= 3 && f[2].startsWith('fuse'))
    .map((f) => f[1].replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
}

export async function isFuseMounted(path: string): Promise<boolean> {
  return fuseMountpoints(await readFile('/proc/mounts', 'utf8')).includes(path);
}

async function waitMounted(path: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await isFuseMounted(path))) {
    if (Date.now() > deadline) throw new Error(`bindfs did not appear at ${path} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Mounts bindfs over a fresh temp directory. `fuseOptions` go to `-o`;
 * allow_other and default_permissions are always added so permission
 * checks see kernel-enforced modes for every uid.
 */
export async function mountBindfs(fuseOptions: string[] = ['big_writes'], extraArgs: string[] = []): Promise<BindfsMount> {
  const source = await makeTempDir('bindfs-source');
  const mountpoint = await makeTempDir('bindfs-mnt');
  const options = [...new Set([...fuseOptions, 'allow_other', 'default_permissions'])].join(',');
  let mounted = false;
  const unmount = async (): Promise<void> => {
    if (mounted || (await isFuseMounted(mountpoint))) {
      await runOk('fusermount', ['-uz', mountpoint]);
      live.delete(mountpoint);
      mounted = false;
    }
    await removeTree(mountpoint);
    await removeTree(source);
  };
  try {
    live.add(mountpoint);
    await runOk('bindfs', ['-o', options, ...extraArgs, source, mountpoint]);
    await waitMounted(mountpoint, 5_000);
    mounted = true;
  } catch (e) {
    await unmount().catch(() => {});
    throw e;
  }
  return { source, mountpoint, unmount };
}

/**
 * Mocha hooks: mounts bindfs in before(), unmounts in after() (which mocha
 * runs even when before() or a test failed). Returns a getter for the mount point.
 */
export function useBindfs(fuseOptions?: string[], extraArgs?: string[]): () => string {
  let mount: BindfsMount | undefined;
  before(async function () {
    this.timeout(15_000);
    mount = await mountBindfs(fuseOptions, extraArgs);
  });
  after(async function () {
    this.timeout(15_000);
    await mount?.unmount();
    mount = undefined;
  });
  return () => {
    if (!mount) throw new Error('bindfs is not mounted (did before() fail?)');
    return mount.mountpoint;
  };
}
