// Small assertion helpers shared by the check modules.
import { createHash } from 'node:crypto';
import { open, readdir, type FileHandle } from 'node:fs/promises';
import { assert } from 'chai';
import type { FsOpResult } from '../../helpers/as-user.js';

export { assert };

/** Awaits `p` and asserts it rejects with one of the errno `codes`. */
export async function rejectsWith(p: Promise<unknown>, codes: string | string[], what: string): Promise<void> {
  const want = Array.isArray(codes) ? codes : [codes];
  try {
    await p;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== undefined && want.includes(code)) return;
    assert.fail(`${what}: expected ${want.join(' or ')}, got ${code ?? String(e)}`);
  }
  assert.fail(`${what}: expected ${want.join(' or ')}, but it succeeded`);
}

/** Asserts a child-process fs operation failed with one of `codes`. */
export function deniedWith(r: FsOpResult, codes: string | string[], what: string): void {
  const want = Array.isArray(codes) ? codes : [codes];
  assert.isFalse(r.ok, `${what}: expected ${want.join(' or ')}, but it succeeded`);
  assert.include(want, r.code, `${what}: expected ${want.join(' or ')}, got ${r.code} (${r.message})`);
}

/** Asserts a child-process fs operation succeeded. */
export function allowed(r: FsOpResult, what: string): void {
  assert.isTrue(r.ok, `${what}: expected success, got ${r.code} (${r.message})`);
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function names(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort();
}

export function isZero(buf: Buffer): boolean {
  for (const b of buf) if (b !== 0) return false;
  return true;
}

export function octal(mode: number): string {
  return `0${(mode & 0o7777).toString(8)}`;
}

/** Opens `path`, runs `fn`, and always closes the handle (a leaked fd keeps a FUSE file busy). */
export async function withFile<T>(path: string, flags: string | number, fn: (fh: FileHandle) => Promise<T>): Promise<T> {
  const fh = await open(path, flags);
  try {
    return await fn(fh);
  } finally {
    await fh.close();
  }
}
