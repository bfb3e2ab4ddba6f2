// Mount / unmount helpers for the fuse-native integration tests. The
// passthrough (test/fakes/passthrough-fuse.ts) always runs in a child process;
// this process only drives the mount, so it may use synchronous fs calls on it.
import {spawn, execFile, type ChildProcess} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'

export const run = promisify(execFile)
const here = path.dirname(fileURLToPath(import.meta.url))
export const repoRoot = path.resolve(here, '..', '..', '..')
const FAKE = path.join(repoRoot, 'test', 'fakes', 'passthrough-fuse.ts')

export interface PassthroughConfig {
  options?: string[]
  timeout?: number
  slowMs?: number
  sleepMs?: number
  log?: boolean
  maxWrite?: number
}

export type FakeEvent = {ev: string; [k: string]: any}

export interface Mount {
  root: string
  backing: string
  mnt: string
  child: ChildProcess
  events: FakeEvent[]
  exited: () => boolean
  waitFor: <T>(pred: () => T | undefined | false, ms?: number, what?: string) => Promise<T>
  stop: () => Promise<void>
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export function isMounted(mnt: string): boolean {
  return fs
    .readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[1] === mnt)
}

export async function fusermountU(mnt: string): Promise<void> {
  // Lazy unmount; fails harmlessly when nothing is mounted there.
  await run('fusermount', ['-uz', mnt]).catch(() => undefined)
}

export async function mountPassthrough(cfg: PassthroughConfig): Promise<Mount> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pacio-fuse-native-'))
  fs.chmodSync(root, 0o755) // other uids must be able to reach the mountpoint
  const backing = path.join(root, 'backing')
  const mnt = path.join(root, 'mnt')
  fs.mkdirSync(backing, {mode: 0o777})
  fs.chmodSync(backing, 0o777) // reported as the mount root's mode
  fs.mkdirSync(mnt)

  const child = spawn(process.execPath, ['--import', 'tsx', FAKE, backing, mnt, JSON.stringify(cfg)], {
    cwd: repoRoot,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const events: FakeEvent[] = []
  let exitedFlag = false
  child.on('message', (m) => events.push(m as FakeEvent))
  child.on('exit', () => {
    exitedFlag = true
  })

  const waitFor = async <T>(pred: () => T | undefined | false, ms = 10_000, what = 'condition'): Promise<T> => {
    const end = Date.now() + ms
    for (;;) {
      const v = pred()
      if (v) return v
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
      await sleep(10)
    }
  }

  const stop = async (): Promise<void> => {
    try {
      if (!exitedFlag) {
        child.kill('SIGTERM')
        await waitFor(() => exitedFlag, 5000, 'passthrough exit').catch(() => {
          child.kill('SIGKILL')
        })
      }
    } finally {
      await fusermountU(mnt)
      if (!isMounted(mnt)) fs.rmSync(root, {recursive: true, force: true})
    }
  }

  try {
    await waitFor(() => events.some((e) => e.ev === 'ready') || exitedFlag, 15_000, 'mount')
    if (exitedFlag) throw new Error('passthrough exited before mounting')
  } catch (err) {
    await stop()
    throw err
  }
  return {root, backing, mnt, child, events, exited: () => exitedFlag, waitFor, stop}
}
