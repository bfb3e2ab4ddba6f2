// Metadata: modes, owners, timestamps, extended attributes, statfs.
import { chmod, chown, lchown, lstat, mkdir, stat, statfs, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run, runOk } from '../../helpers/exec.js';
import { assert, octal, withFile } from './expect.js';
import type { Check } from './types.js';

const NS = 1_000_000_000n;
/** 2001-02-03 04:05:06.123456789 UTC */
const T1 = { text: '2001-02-03 04:05:06.123456789 UTC', ns: 981173106n * NS + 123456789n };
/** 2002-03-04 05:06:07.987654321 UTC */
const T2 = { text: '2002-03-04 05:06:07.987654321 UTC', ns: 1015218367n * NS + 987654321n };

async function times(p: string): Promise<{ atime: bigint; mtime: bigint; ctime: bigint }> {
  const st = await lstat(p, { bigint: true });
  return { atime: st.atimeNs, mtime: st.mtimeNs, ctime: st.ctimeNs };
}

function recent(ns: bigint, what: string): void {
  const ageS = Number(BigInt(Date.now()) * 1_000_000n - ns) / 1e9;
  assert.isBelow(Math.abs(ageS), 120, `${what} should be about now, is ${ageS.toFixed(1)} s off`);
}

async function getfattr(args: string[]) {
  return run('getfattr', ['--absolute-names', ...args]);
}

export const attrChecks: Check[] = [
  {
    name: 'chmod: permission bits round-trip on files, directories and fds',
    async run(root) {
      const f = join(root, 'f');
      const d = join(root, 'd');
      await writeFile(f, 'x');
      await mkdir(d);
      for (const mode of [0o600, 0o640, 0o755, 0o000, 0o777, 0o444, 0o123]) {
        await chmod(f, mode);
        assert.strictEqual(octal((await stat(f)).mode), octal(mode), `file mode after chmod ${octal(mode)}`);
        await chmod(d, mode);
        assert.strictEqual(octal((await stat(d)).mode), octal(mode), `directory mode after chmod ${octal(mode)}`);
      }
      await withFile(f, 'r', (fh) => fh.chmod(0o604));
      assert.strictEqual(octal((await stat(f)).mode), '0604', 'mode after fchmod');
      assert.isTrue((await stat(f)).isFile(), 'chmod keeps the file type');
    },
  },
  {
    name: 'chmod: setuid, setgid and sticky bits (as root)',
    async run(root) {
      const f = join(root, 'prog');
      const d = join(root, 'shared');
      await writeFile(f, '#!/bin/sh\n');
      await mkdir(d);
      for (const mode of [0o4755, 0o2755, 0o6711]) {
        await chmod(f, mode);
        assert.strictEqual(octal((await stat(f)).mode), octal(mode), `file mode ${octal(mode)}`);
      }
      for (const mode of [0o1777, 0o2775, 0o3770]) {
        await chmod(d, mode);
        assert.strictEqual(octal((await stat(d)).mode), octal(mode), `directory mode ${octal(mode)}`);
      }
    },
  },
  {
    name: 'chown: root gives files, directories and symlinks to another uid/gid',
    async run(root) {
      const f = join(root, 'f');
      const d = join(root, 'd');
      const l = join(root, 'l');
      await writeFile(f, 'x');
      await mkdir(d);
      await symlink('f', l);
      await chown(f, 1234, 5678);
      let st = await stat(f);
      assert.deepEqual([st.uid, st.gid], [1234, 5678], 'file owner after chown');
      await chown(f, -1, 999);
      st = await stat(f);
      assert.deepEqual([st.uid, st.gid], [1234, 999], 'chown with uid -1 changes only the group');
      await chown(f, 4321, -1);
      st = await stat(f);
      assert.deepEqual([st.uid, st.gid], [4321, 999], 'chown with gid -1 changes only the owner');
      await chown(d, 2000, 3000);
      st = await stat(d);
      assert.deepEqual([st.uid, st.gid], [2000, 3000], 'directory owner after chown');
      await lchown(l, 7, 8);
      const ls = await lstat(l);
      assert.deepEqual([ls.uid, ls.gid], [7, 8], 'lchown changes the link itself');
      st = await stat(f);
      assert.deepEqual([st.uid, st.gid], [4321, 999], 'lchown leaves the target alone');
    },
  },
  {
    name: 'utimens: atime set separately (touch -a -d) leaves mtime alone',
    async run(root) {
      const f = join(root, 'f');
      await writeFile(f, 'x');
      await runOk('touch', ['-d', T2.text, f]);
      await runOk('touch', ['-a', '-d', T1.text, f]);
      const t = await times(f);
      assert.strictEqual(t.atime, T1.ns, 'atime after touch -a');
      assert.strictEqual(t.mtime, T2.ns, 'mtime must not change on touch -a');
    },
  },
  {
    name: 'utimens: mtime set separately (touch -m -d) leaves atime alone',
    async run(root) {
      const f = join(root, 'f');
      await writeFile(f, 'x');
      await runOk('touch', ['-d', T2.text, f]);
      await runOk('touch', ['-m', '-d', T1.text, f]);
      const t = await times(f);
      assert.strictEqual(t.mtime, T1.ns, 'mtime after touch -m');
      assert.strictEqual(t.atime, T2.ns, 'atime must not change on touch -m');
    },
  },
  {
    name: 'utimens: nanosecond timestamps are preserved',
    async run(root) {
      const f = join(root, 'f');
      const d = join(root, 'd');
      const l = join(root, 'l');
      await writeFile(f, 'x');
      await mkdir(d);
      await symlink('f', l);
      for (const p of [f, d]) {
        await runOk('touch', ['-d', T1.text, p]);
        const t = await times(p);
        assert.strictEqual(t.mtime, T1.ns, `mtime ns of ${p}`);
        assert.strictEqual(t.atime, T1.ns, `atime ns of ${p}`);
      }
      await runOk('touch', ['-h', '-d', T2.text, l]);
      assert.strictEqual((await times(l)).mtime, T2.ns, 'symlink mtime ns (touch -h)');
      assert.strictEqual((await times(f)).mtime, T1.ns, 'touch -h leaves the target alone');
      // fs.utimes takes float seconds and libuv passes microseconds: allow 2 µs
      // of rounding, which still catches truncation to milliseconds or seconds.
      await utimes(f, 1234567890.123456, 1234567890.654321);
      const t = await times(f);
      const err = (got: bigint, want: bigint) => Number(got > want ? got - want : want - got);
      assert.isBelow(err(t.atime, 1234567890123456000n), 2000, `utimes atime sub-ms precision (got ${t.atime})`);
      assert.isBelow(err(t.mtime, 1234567890654321000n), 2000, `utimes mtime sub-ms precision (got ${t.mtime})`);
    },
  },
  {
    name: 'times: write updates mtime and ctime; chmod updates only ctime',
    async run(root) {
      const f = join(root, 'f');
      await writeFile(f, 'x');
      await runOk('touch', ['-d', T1.text, f]);
      let t = await times(f);
      assert.strictEqual(t.mtime, T1.ns, 'mtime set to 2001');
      recent(t.ctime, 'ctime after utimens (ctime cannot be set)');
      await chmod(f, 0o600);
      t = await times(f);
      assert.strictEqual(t.mtime, T1.ns, 'chmod must not change mtime');
      recent(t.ctime, 'ctime after chmod');
      await withFile(f, 'r+', (fh) => fh.write('more', 1));
      t = await times(f);
      recent(t.mtime, 'mtime after write');
      recent(t.ctime, 'ctime after write');
      await runOk('touch', ['-d', T1.text, f]);
      await withFile(f, 'r+', (fh) => fh.truncate(2));
      recent((await times(f)).mtime, 'mtime after ftruncate');
    },
  },
  {
    name: 'times: creating and removing entries updates the directory mtime',
    async run(root) {
      const d = join(root, 'd');
      await mkdir(d);
      await runOk('touch', ['-d', T1.text, d]);
      await writeFile(join(d, 'new'), '');
      recent((await times(d)).mtime, 'directory mtime after create');
      await runOk('touch', ['-d', T1.text, d]);
      await runOk('rm', [join(d, 'new')]);
      recent((await times(d)).mtime, 'directory mtime after unlink');
    },
  },
  {
    name: 'xattr: user.* set, get, list, replace and remove',
    async run(root) {
      const f = join(root, 'f');
      const d = join(root, 'd');
      await writeFile(f, 'x');
      await mkdir(d);
      for (const p of [f, d]) {
        await runOk('setfattr', ['-n', 'user.text', '-v', 'hello world', p]);
        await runOk('setfattr', ['-n', 'user.binary', '-v', '0x00ff10ab', p]);
        await runOk('setfattr', ['-n', 'user.empty', p]);
        await runOk('setfattr', ['-n', 'user.large', '-v', `0x${'5a'.repeat(3000)}`, p]);
        assert.strictEqual((await getfattr(['--only-values', '-n', 'user.text', p])).stdout, 'hello world', 'text value');
        assert.strictEqual((await getfattr(['-e', 'hex', '-n', 'user.binary', p])).stdout.split('\n')[1], 'user.binary=0x00ff10ab', 'binary value');
        const large = await getfattr(['--only-values', '-n', 'user.large', p]);
        assert.strictEqual(large.stdoutBytes.length, 3000, '3000-byte value length');
        const listing = await runOk('getfattr', ['--absolute-names', '-m', '^user\\.', p]);
        assert.deepEqual(listing.stdout.split('\n').filter((s) => s.startsWith('user.')).sort(), ['user.binary', 'user.empty', 'user.large', 'user.text'], `xattr list of ${p}`);
        await runOk('setfattr', ['-n', 'user.text', '-v', 'replaced', p]);
        assert.strictEqual((await getfattr(['--only-values', '-n', 'user.text', p])).stdout, 'replaced', 'value after replace');
        await runOk('setfattr', ['-x', 'user.text', p]);
        const after = await runOk('getfattr', ['--absolute-names', '-m', '^user\\.', p]);
        assert.notInclude(after.stdout, 'user.text', 'removed attribute is no longer listed');
        assert.include(after.stdout, 'user.binary', 'other attributes stay');
      }
    },
  },
  {
    name: 'xattr: missing attribute fails with ENODATA',
    async run(root) {
      const f = join(root, 'f');
      await writeFile(f, 'x');
      const get = await getfattr(['-n', 'user.missing', f]);
      assert.notStrictEqual(get.code, 0, 'getfattr of a missing attribute must fail');
      assert.include(get.stderr, 'No such attribute', 'getfattr error is ENODATA');
      const del = await run('setfattr', ['-x', 'user.missing', f]);
      assert.notStrictEqual(del.code, 0, 'removing a missing attribute must fail');
      assert.include(del.stderr, 'No such attribute', 'removexattr error is ENODATA');
      const none = await getfattr(['-d', '-m', '^user\\.', f]);
      assert.strictEqual(none.stdout.trim(), '', 'a fresh file lists no user attributes');
    },
  },
  {
    name: 'xattr: attributes follow the inode across rename and hard link',
    async run(root) {
      const f = join(root, 'f');
      await writeFile(f, 'x');
      await runOk('setfattr', ['-n', 'user.tag', '-v', 'kept', f]);
      await runOk('mv', [f, join(root, 'g')]);
      await runOk('ln', [join(root, 'g'), join(root, 'h')]);
      for (const n of ['g', 'h']) {
        assert.strictEqual((await getfattr(['--only-values', '-n', 'user.tag', join(root, n)])).stdout, 'kept', `attribute via ${n}`);
      }
    },
  },
  {
    name: 'statfs: fs.statfs and df report sane, consistent numbers',
    async run(root, ctx) {
      const s = await statfs(root);
      assert.isAbove(s.bsize, 0, 'f_bsize');
      assert.isAbove(s.blocks, 0, 'f_blocks');
      assert.isAtMost(s.bfree, s.blocks, 'f_bfree <= f_blocks');
      assert.isAtMost(s.bavail, s.bfree, 'f_bavail <= f_bfree');
      assert.isAtLeast(s.files, s.ffree, 'f_files >= f_ffree');
      const top = await statfs(ctx.mountRoot);
      assert.strictEqual(s.blocks, top.blocks, 'a subdirectory reports the same f_blocks as the mount root');
      assert.strictEqual(s.type, top.type, 'a subdirectory reports the same f_type as the mount root');
      const df = await runOk('df', ['-P', '-k', root]);
      const fields = df.stdout.trim().split('\n')[1].trim().split(/\s+/);
      const [total, used, avail] = fields.slice(1, 4).map(Number);
      assert.isAbove(total, 0, `df total (${df.stdout})`);
      assert.isAtMost(used + avail, total * 1.01 + 1, `df used + available <= total (${df.stdout})`);
      assert.isAtLeast(used, 0, 'df used');
    },
  },
];
