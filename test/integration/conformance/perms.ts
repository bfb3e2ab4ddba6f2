// Permission enforcement and ownership for an unprivileged caller. The mount
// under test needs allow_other (other uids may enter) and default_permissions
// (or equivalent checks in the file system itself).
import { chmod, chown, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fsOpAs, fsOpsAs } from '../../helpers/as-user.js';
import { allowed, assert, deniedWith, octal } from './expect.js';
import type { Check, CheckContext } from './types.js';

/** Fails clearly when the unprivileged user cannot even reach `root` (mount options or ancestor modes). */
async function assertReachable(ctx: CheckContext, root: string): Promise<void> {
  const r = await fsOpAs(ctx.nobody, 'readdirSync', root);
  assert.isTrue(
    r.ok,
    `uid ${ctx.nobody.uid} cannot list ${root} (${r.code}): mount with allow_other and make every ancestor world-searchable`,
  );
}

/** A 0777 directory owned by root inside `root`. */
async function openDir(root: string, name = 'open'): Promise<string> {
  const d = join(root, name);
  await mkdir(d);
  await chmod(d, 0o777);
  return d;
}

export const permChecks: Check[] = [
  {
    name: 'perms: non-root cannot write a 0644 root-owned file but can read it',
    async run(root, ctx) {
      await assertReachable(ctx, root);
      const f = join(root, 'rootfile');
      await writeFile(f, 'root data');
      await chmod(f, 0o644);
      const [read, write, trunc, access] = await fsOpsAs(ctx.nobody, [
        ['readFileSync', f, 'utf8'],
        ['openSync', f, 'r+'],
        ['truncateSync', f, 0],
        ['accessSync', f, 2 /* W_OK */],
      ]);
      allowed(read, 'read of a 0644 file');
      assert.strictEqual(read.value, 'root data', 'content read by non-root');
      deniedWith(write, 'EACCES', 'open(O_RDWR) of a 0644 root file by non-root');
      deniedWith(trunc, 'EACCES', 'truncate of a 0644 root file by non-root');
      deniedWith(access, 'EACCES', 'access(W_OK) on a 0644 root file by non-root');
      assert.strictEqual(await readFile(f, 'utf8'), 'root data', 'file unchanged');
    },
  },
  {
    name: 'perms: non-root cannot read a 0600 file or enter a 0700 directory',
    async run(root, ctx) {
      await assertReachable(ctx, root);
      const f = join(root, 'secret');
      const d = join(root, 'private');
      await writeFile(f, 'secret');
      await chmod(f, 0o600);
      await mkdir(d);
      await writeFile(join(d, 'inner'), 'inner');
      await chmod(d, 0o700);
      const [read, list, inner] = await fsOpsAs(ctx.nobody, [
        ['readFileSync', f, 'utf8'],
        ['readdirSync', d],
        ['statSync', join(d, 'inner')],
      ]);
      deniedWith(read, 'EACCES', 'read of a 0600 root file');
      deniedWith(list, 'EACCES', 'readdir of a 0700 root directory');
      deniedWith(inner, 'EACCES', 'lookup inside a 0700 root directory');
    },
  },
  {
    name: 'perms: non-root cannot create in a 0755 root-owned directory',
    async run(root, ctx) {
      await assertReachable(ctx, root);
      const d = join(root, 'closed');
      await mkdir(d);
      await chmod(d, 0o755);
      await writeFile(join(d, 'existing'), '');
      const [create, mk, del] = await fsOpsAs(ctx.nobody, [
        ['writeFileSync', join(d, 'intruder'), 'x'],
        ['mkdirSync', join(d, 'subdir')],
        ['unlinkSync', join(d, 'existing')],
      ]);
      deniedWith(create, 'EACCES', 'create in a 0755 root directory');
      deniedWith(mk, 'EACCES', 'mkdir in a 0755 root directory');
      deniedWith(del, 'EACCES', 'unlink in a 0755 root directory');
    },
  },
  {
    name: 'perms: non-root creates in a 0777 directory and owns what it creates',
    async run(root, ctx) {
      await assertReachable(ctx, root);
      const d = await openDir(root);
      const [file, dir] = await fsOpsAs(ctx.nobody, [
        ['writeFileSync', join(d, 'mine'), 'by nobody'],
        ['mkdirSync', join(d, 'mydir')],
      ]);
      allowed(file, 'create in a 0777 directory');
      allowed(dir, 'mkdir in a 0777 directory');
      const st = await stat(join(d, 'mine'));
      assert.deepEqual([st.uid, st.gid], [ctx.nobody.uid, ctx.nobody.gid], 'new file is owned by its creator');
      assert.strictEqual(octal(st.mode), '0644', 'new file mode is 0666 & ~umask(022)');
      const ds = await stat(join(d, 'mydir'));
      assert.deepEqual([ds.uid, ds.gid], [ctx.nobody.uid, ctx.nobody.gid], 'new directory is owned by its creator');
      assert.strictEqual(octal(ds.mode), '0755', 'new directory mode is 0777 & ~umask(022)');
      assert.strictEqual(await readFile(join(d, 'mine'), 'utf8'), 'by nobody', 'content written by non-root');
    },
  },
  {
    name: 'perms: new entries in a setgid directory inherit its group',
    async run(root, ctx) {
      await assertReachable(ctx, root);
      const d = join(root, 'team');
      await mkdir(d);
      await chown(d, 0, 4242);
      await chmod(d, 0o2777);
      const [file, dir] = await fsOpsAs(ctx.nobody, [
        ['writeFileSync', join(d, 'f'), 'x'],
        ['mkdirSync', join(d, 'sub')],
      ]);
      allowed(file, 'create in a setgid 2777 directory');
      allowed(dir, 'mkdir in a setgid 2777 directory');
      const fs = await stat(join(d, 'f'));
      assert.deepEqual([fs.uid, fs.gid], [ctx.nobody.uid, 4242], 'file: creator uid, directory gid');
      const ds = await stat(join(d, 'sub'));
      assert.deepEqual([ds.uid, ds.gid], [ctx.nobody.uid, 4242], 'subdirectory: creator uid, directory gid');
      assert.strictEqual(ds.mode & 0o2000, 0o2000, 'subdirectory inherits the setgid bit');
    },
  },
  {
    name: 'perms: sticky directory stops non-root removing or renaming others\' files',
    async run(root, ctx) {
      await assertReachable(ctx, root);
      const d = join(root, 'tmp');
      await mkdir(d);
      await chmod(d, 0o1777);
      await writeFile(join(d, 'roots'), 'r');
      await chmod(join(d, 'roots'), 0o666);
      const [del, mv, own, delOwn] = await fsOpsAs(ctx.nobody, [
        ['unlinkSync', join(d, 'roots')],
        ['renameSync', join(d, 'roots'), join(d, 'stolen')],
        ['writeFileSync', join(d, 'mine'), 'm'],
        ['unlinkSync', join(d, 'mine')],
      ]);
      deniedWith(del, ['EPERM', 'EACCES'], 'unlink of another user\'s file in a sticky directory');
      deniedWith(mv, ['EPERM', 'EACCES'], 'rename of another user\'s file in a sticky directory');
      allowed(own, 'create own file in a sticky directory');
      allowed(delOwn, 'unlink own file in a sticky directory');
      assert.strictEqual(await readFile(join(d, 'roots'), 'utf8'), 'r', 'root file untouched');
    },
  },
  {
    name: 'perms: non-root cannot chmod, chown or utime files it does not own',
    async run(root, ctx) {
      await assertReachable(ctx, root);
      const d = await openDir(root);
      const f = join(d, 'rootfile');
      await writeFile(f, 'x');
      await chmod(f, 0o666);
      const [mod, own, time, mine, giveAway] = await fsOpsAs(ctx.nobody, [
        ['chmodSync', f, 0o777],
        ['chownSync', f, ctx.nobody.uid, ctx.nobody.gid],
        ['utimesSync', f, 1000, 1000],
        ['writeFileSync', join(d, 'mine'), 'm'],
        ['chownSync', join(d, 'mine'), 0, 0],
      ]);
      deniedWith(mod, 'EPERM', 'chmod of a root file by non-root');
      deniedWith(own, 'EPERM', 'chown of a root file by non-root');
      deniedWith(time, 'EPERM', 'setting explicit times on a root file by non-root');
      allowed(mine, 'create own file');
      deniedWith(giveAway, 'EPERM', 'chown of own file to root by non-root');
      const st = await stat(f);
      assert.strictEqual(octal(st.mode), '0666', 'mode unchanged');
      assert.deepEqual([st.uid, st.gid], [0, 0], 'owner unchanged');
    },
  },
  {
    name: 'chmod: non-root keeps setgid only for a group it belongs to',
    async run(root, ctx) {
      await assertReachable(ctx, root);
      const d = await openDir(root);
      const own = join(d, 'own-group');
      const foreign = join(d, 'foreign-group');
      const made = await fsOpsAs(ctx.nobody, [
        ['writeFileSync', own, 'x'],
        ['writeFileSync', foreign, 'x'],
      ]);
      made.forEach((r) => allowed(r, 'create own files'));
      await chown(foreign, ctx.nobody.uid, 0); // still owned by nobody, but group root
      const [a, b] = await fsOpsAs(ctx.nobody, [
        ['chmodSync', own, 0o2755],
        ['chmodSync', foreign, 0o2755],
      ]);
      allowed(a, 'chmod g+s on own file, own group');
      allowed(b, 'chmod g+s on own file, foreign group (bit silently dropped)');
      assert.strictEqual(octal((await stat(own)).mode), '02755', 'setgid kept for the caller\'s group');
      assert.strictEqual(octal((await stat(foreign)).mode), '0755', 'setgid dropped for a group the caller is not in');
    },
  },
  {
    name: 'perms: non-root write or chgrp clears setuid/setgid',
    async run(root, ctx) {
      await assertReachable(ctx, root);
      const d = await openDir(root);
      const byWrite = join(d, 'written');
      const byChgrp = join(d, 'chgrped');
      const setup = await fsOpsAs(ctx.nobody, [
        ['writeFileSync', byWrite, '#!/bin/sh\n'],
        ['writeFileSync', byChgrp, '#!/bin/sh\n'],
        ['chmodSync', byWrite, 0o6775],
        ['chmodSync', byChgrp, 0o6775],
      ]);
      setup.forEach((r) => allowed(r, 'create and chmod own files'));
      assert.strictEqual(octal((await stat(byWrite)).mode), '06775', 'setuid+setgid set by the owner');
      const [w, g] = await fsOpsAs(ctx.nobody, [
        ['appendFileSync', byWrite, 'echo hi\n'],
        ['chownSync', byChgrp, -1, ctx.nobody.gid],
      ]);
      allowed(w, 'append to own file');
      allowed(g, 'chgrp own file to own group');
      assert.strictEqual(octal((await stat(byWrite)).mode), '0775', 'unprivileged write must clear setuid and setgid');
      assert.strictEqual(octal((await stat(byChgrp)).mode), '0775', 'unprivileged chown must clear setuid and setgid');
    },
  },
];
