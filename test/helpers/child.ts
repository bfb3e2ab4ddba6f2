// A paciofs server process for tests (`serve`, `join`): started in a child
// process, waited for until its output shows it is ready, and always stopped
// again (SIGKILL at the test process's exit if a test forgot it).
import {spawn, type ChildProcess} from 'node:child_process'
import {childEnv} from './exec.js'

const live = new Set<ChildProcess>()
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL')
})

export interface ServerChild {
  readonly child: ChildProcess
  output(): string
  /** SIGTERM (SIGKILL after 30 s); resolves with the exit code once the process is gone. */
  stop(): Promise<number | null>
  kill(): Promise<void>
}

/** Runs `node args` with PACIOFS_CONFIG_DIR=configDir until `ready` matches its output; throws with the output if it exits or times out first. */
export async function startServerChild(args: string[], configDir: string, ready: RegExp, what: string, timeoutMs: number): Promise<ServerChild> {
  // PACIOFS_CHILD_NODE_ARGS: node options for each server child, space-separated (profiling a bench:
  // '--cpu-prof --cpu-prof-dir=/tmp/prof' writes a CPU profile per process as it exits; '--trace-gc')
  const extra = process.env.PACIOFS_CHILD_NODE_ARGS?.split(' ').filter(Boolean) ?? []
  args = [...extra, ...args]
  const child = spawn(process.execPath, args, {env: childEnv({PACIOFS_CONFIG_DIR: configDir}), stdio: ['ignore', 'pipe', 'pipe']})
  live.add(child)
  let out = ''
  child.stdout!.on('data', d => (out += d))
  child.stderr!.on('data', d => (out += d))
  const exited = new Promise<number | null>(res => child.on('exit', code => {
    live.delete(child)
    res(code)
  }))
  const deadline = Date.now() + timeoutMs
  while (!ready.test(out)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`${what} did not come up (exit ${child.exitCode}):\n${out}`)
    }

    await new Promise(r => setTimeout(r, 25))
  }

  return {
    child,
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
