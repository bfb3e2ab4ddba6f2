// Runs fs operations as another uid/gid in a child process (the caller must
// never block: the file system under test may live in this process).
import { runNode } from './exec.js';

export interface Identity {
  uid: number;
  gid: number;
}

/** One synchronous `fs` call in the child, e.g. ['openSync', path, 'r+']. */
export type FsOp = [name: string, ...args: (string | number | null)[]];

export interface FsOpResult {
  ok: boolean;
  /** errno code (EACCES, EPERM, ...) when !ok */
  code?: string;
  message?: string;
  /** string/Buffer results as text; Stats as {uid, gid, mode, size} */
  value?: unknown;
}

const CHILD = `
const fs = require('fs');
process.umask(0o022);
const ops = JSON.parse(process.argv[1]);
const out = ops.map(([name, ...args]) => {
  try {
    let v = fs[name](...args);
    if (Buffer.isBuffer(v)) v = v.toString('utf8');
    else if (v && typeof v === 'object' && 'mode' in v) v = { uid: v.uid, gid: v.gid, mode: v.mode, size: v.size };
    return { ok: true, value: v };
  } catch (e) {
    return { ok: false, code: e.code, message: e.message };
  }
});
process.stdout.write(JSON.stringify(out));
`;

/** Runs the operations in order (later ones run even if earlier ones fail) as `who`, umask 022. */
export async function fsOpsAs(who: Identity, ops: FsOp[]): Promise<FsOpResult[]> {
  const res = await runNode(CHILD, [JSON.stringify(ops)], { uid: who.uid, gid: who.gid });
  if (res.code !== 0) throw new Error(`child as uid ${who.uid} failed (${res.code}): ${res.stderr}`);
  return JSON.parse(res.stdout) as FsOpResult[];
}

export async function fsOpAs(who: Identity, ...op: FsOp): Promise<FsOpResult> {
  return (await fsOpsAs(who, [op]))[0];
}
