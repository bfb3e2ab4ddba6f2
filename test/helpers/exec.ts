// Spawning external tools without blocking the event loop: the file system
// under test may be served by this very process, so nothing here is sync.
import { spawn } from 'node:child_process';

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  uid?: number;
  gid?: number;
  /** Written to the child's stdin, which is then closed. */
  input?: string | Buffer;
  /** The child is killed with SIGKILL after this long (default 30 s). */
  timeoutMs?: number;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly result: RunResult,
  ) {
    const how = result.signal ? `signal ${result.signal}` : `exit code ${result.code}`;
    super(`\`${command}\` failed with ${how}\n${result.stderr.trim() || result.stdout.trim()}`);
    this.name = 'CommandError';
  }
}

/** Environment for children: no inherited NODE_OPTIONS (mocha's loaders are not wanted there). */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C.UTF-8', ...extra };
  delete env.NODE_OPTIONS;
  return env;
}

export function describeCommand(cmd: string, args: readonly string[]): string {
  const shown = args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a.length > 80 ? `${a.slice(0, 77)}...` : a)));
  return [cmd, ...shown].join(' ');
}

/** Runs a command to completion. Resolves whatever the exit status; rejects only if it cannot start or times out. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd ?? '/',
      env: opts.env ?? childEnv(),
      uid: opts.uid,
      gid: opts.gid,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run \`${describeCommand(cmd, args)}\`: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      const result = { code, signal, stdoutBytes, stdout: stdoutBytes.toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
      if (timedOut) reject(new Error(`\`${describeCommand(cmd, args)}\` timed out after ${timeoutMs} ms\n${result.stderr}`));
      else resolve(result);
    });
    child.stdin.on('error', () => {}); // a child that exits without reading its stdin is not our failure
    child.stdin.end(opts.input ?? '');
  });
}

/** Runs a command and throws a CommandError unless it exits with status 0. */
export async function runOk(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const result = await run(cmd, args, opts);
  if (result.code !== 0) throw new CommandError(describeCommand(cmd, args), result);
  return result;
}

/** Runs a CommonJS snippet in a fresh node process; `args` arrive as process.argv.slice(1). */
export function runNode(script: string, args: readonly string[] = [], opts: RunOptions = {}): Promise<RunResult> {
  return run(process.execPath, ['-e', script, ...args], opts);
}
