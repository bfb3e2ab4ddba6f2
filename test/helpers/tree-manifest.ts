// A canonical, diffable text description of a directory tree: one line per
// entry with type, mode, owner, size, content hash, link target, hard-link
// group and (optionally) nanosecond mtime and user.* xattrs.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './exec.js';

export interface ManifestOptions {
  /** Include mtime in ns (default true). Directories and symlinks included. */
  times?: boolean;
  /** Include owner uid:gid (default true). */
  owners?: boolean;
  /** Include user.* extended attributes (default false; costs one getfattr call). */
  xattrs?: boolean;
  /** Relative paths (posix, no leading ./) to leave out, with their subtrees. */
  exclude?: (rel: string) => boolean;
}

async function fileHash(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

function typeOf(st: Awaited<ReturnType<typeof lstat>>): string {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'link';
  if (st.isFIFO()) return 'fifo';
  if (st.isCharacterDevice()) return 'chr';
  if (st.isBlockDevice()) return 'blk';
  return 'socket';
}

/** Decodes getfattr's octal escapes (\\012, \\303...) back to a UTF-8 string. */
function unescapeGetfattr(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const m = /^\\([0-7]{3})/.exec(s.slice(i, i + 4));
    if (m) {
      bytes.push(parseInt(m[1], 8));
      i += 3;
    } else bytes.push(...Buffer.from(s[i], 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}

async function userXattrs(root: string): Promise<Map<string, string[]>> {
  const res = await run('getfattr', ['-R', '-P', '-h', '--absolute-names', '-d', '-m', '^user\\.', '-e', 'hex', root]);
  if (res.code !== 0 && !/No such attribute|Operation not supported/.test(res.stderr)) {
    throw new Error(`getfattr -R ${root} failed: ${res.stderr}`);
  }
  const out = new Map<string, string[]>();
  let current = '';
  for (const line of res.stdout.split('\n')) {
    if (line.startsWith('# file: ')) {
      current = unescapeGetfattr(line.slice(8));
      out.set(current, []);
    } else if (line.trim() !== '') out.get(current)?.push(line.trim());
  }
  return out;
}

/** Sorted manifest lines of everything below `root` (and `.` for root itself). */
export async function treeManifest(root: string, opts: ManifestOptions = {}): Promise<string> {
  const { times = true, owners = true, xattrs = false, exclude = () => false } = opts;
  const lines: string[] = [];
  const firstNameOfInode = new Map<string, string>();
  const attrs = xattrs ? await userXattrs(root) : new Map<string, string[]>();

  async function visit(rel: string): Promise<void> {
    const abs = rel === '.' ? root : join(root, rel);
    const st = await lstat(abs, { bigint: true });
    const type = typeOf(await lstat(abs));
    const fields = [JSON.stringify(rel), type, `0${(st.mode & 0o7777n).toString(8)}`];
    if (owners) fields.push(`${st.uid}:${st.gid}`);
    if (type === 'file') {
      // Hard links are recognised by inode identity, not st_nlink (whose
      // correctness is a conformance check of its own).
      const key = `${st.dev}:${st.ino}`;
      const first = firstNameOfInode.get(key);
      if (first !== undefined) fields.push(`hardlink-of=${JSON.stringify(first)}`);
      else {
        firstNameOfInode.set(key, rel);
        fields.push(`size=${st.size}`, `sha256=${await fileHash(abs)}`);
      }
    } else if (type === 'link') fields.push(`target=${JSON.stringify(await readlink(abs))}`);
    else if (type === 'chr' || type === 'blk') fields.push(`rdev=${st.rdev}`);
    if (times) fields.push(`mtime=${st.mtimeNs}`);
    const xa = attrs.get(abs);
    if (xa && xa.length > 0) fields.push(`xattrs=${xa.sort().join(',')}`);
    lines.push(fields.join(' '));
    if (type === 'dir') {
      const entries = (await readdir(abs)).sort();
      for (const name of entries) {
        const child = rel === '.' ? name : `${rel}/${name}`;
        if (!exclude(child)) await visit(child);
      }
    }
  }
  await visit('.');
  return `${lines.join('\n')}\n`;
}

/** Lines only in `actual` (+) and only in `expected` (-), at most `limit` of each; '' when equal. */
export function manifestDiff(actual: string, expected: string, limit = 15): string {
  if (actual === expected) return '';
  const a = actual.split('\n');
  const e = expected.split('\n');
  const inA = new Set(a);
  const inE = new Set(e);
  const extra = a.filter((l) => !inE.has(l));
  const missing = e.filter((l) => !inA.has(l));
  const show = (sign: string, lines: string[]) =>
    lines.slice(0, limit).map((l) => `  ${sign} ${l}`).concat(lines.length > limit ? [`  ${sign} ... ${lines.length - limit} more`] : []);
  const body = [...show('-', missing), ...show('+', extra)];
  return body.length > 0 ? body.join('\n') : '  (same lines, different order or count)';
}

/** Throws an AssertionError-like error with a compact line diff when the manifests differ. */
export function assertSameManifest(actual: string, expected: string, what: string): void {
  const diff = manifestDiff(actual, expected);
  if (diff !== '') {
    const err = new Error(`${what} (- expected, + actual):\n${diff}`);
    err.name = 'AssertionError';
    throw err;
  }
}
