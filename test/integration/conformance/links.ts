// Symbolic links, hard links, rename, unlink semantics and inode identity.
import { appendFile, link, lstat, mkdir, open, readdir, readFile, readlink, rename, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { assert, names, rejectsWith, withFile } from './expect.js';
import type { Check } from './types.js';

export const linkChecks: Check[] = [
  {
    name: 'symlink: relative target is stored verbatim and followed',
    async run(root) {
      await mkdir(join(root, 'data'));
      await mkdir(join(root, 'sub'));
      await writeFile(join(root, 'data', 't.txt'), 'target');
      await symlink('data/t.txt', join(root, 'rel'));
      await symlink('../data/t.txt', join(root, 'sub', 'up'));
      assert.strictEqual(await readlink(join(root, 'rel')), 'data/t.txt', 'readlink of relative link');
      assert.strictEqual(await readlink(join(root, 'sub', 'up')), '../data/t.txt', 'readlink of ../ link');
      const lst = await lstat(join(root, 'rel'));
      assert.isTrue(lst.isSymbolicLink(), 'lstat sees a symlink');
      assert.strictEqual(lst.size, 'data/t.txt'.length, 'st_size of a symlink is the target length');
      assert.strictEqual(await readFile(join(root, 'rel'), 'utf8'), 'target', 'read through link');
      assert.strictEqual(await readFile(join(root, 'sub', 'up'), 'utf8'), 'target', 'read through ../ link');
      assert.strictEqual((await stat(join(root, 'rel'))).ino, (await stat(join(root, 'data', 't.txt'))).ino, 'stat follows the link');
      const longTarget = `${'segment/'.repeat(120)}end`;
      await symlink(longTarget, join(root, 'long'));
      assert.strictEqual(await readlink(join(root, 'long')), longTarget, '963-byte link target round-trips');
    },
  },
  {
    name: 'symlink: absolute target',
    async run(root) {
      const target = join(root, 'abs-target');
      await writeFile(target, 'absolute');
      await symlink(target, join(root, 'abs'));
      assert.strictEqual(await readlink(join(root, 'abs')), target, 'readlink of absolute link');
      assert.strictEqual(await readFile(join(root, 'abs'), 'utf8'), 'absolute', 'read through absolute link');
      await writeFile(join(root, 'abs'), 'written through');
      assert.strictEqual(await readFile(target, 'utf8'), 'written through', 'write through link reaches the target');
      assert.isTrue((await lstat(join(root, 'abs'))).isSymbolicLink(), 'link is still a link');
    },
  },
  {
    name: 'symlink: dangling link exists but does not resolve',
    async run(root) {
      const l = join(root, 'dangling');
      await symlink('nowhere', l);
      assert.isTrue((await lstat(l)).isSymbolicLink(), 'lstat of dangling link');
      assert.strictEqual(await readlink(l), 'nowhere', 'readlink of dangling link');
      await rejectsWith(stat(l), 'ENOENT', 'stat through dangling link');
      assert.deepEqual(await readdir(root), ['dangling'], 'dangling link is listed');
      await rejectsWith(symlink('other', l), 'EEXIST', 'symlink over an existing link');
      await writeFile(join(root, 'nowhere'), 'now here');
      assert.strictEqual(await readFile(l, 'utf8'), 'now here', 'link resolves once the target exists');
      await unlink(l);
      assert.deepEqual(await readdir(root), ['nowhere'], 'unlink removes the link, not the target');
    },
  },
  {
    name: 'symlink: O_CREAT|O_EXCL through a dangling link fails with EEXIST',
    async run(root) {
      await symlink('target', join(root, 'l'));
      await rejectsWith(writeFile(join(root, 'l'), 'x', { flag: 'wx' }), 'EEXIST', 'O_EXCL create via dangling link');
      assert.deepEqual(await readdir(root), ['l'], 'the link target was not created');
    },
  },
  {
    name: 'hardlink: names share one inode and outlive each other',
    async run(root) {
      const a = join(root, 'a');
      const b = join(root, 'b');
      await writeFile(a, 'shared');
      await link(a, b);
      assert.strictEqual((await stat(a)).ino, (await stat(b)).ino, 'hard links share the inode number');
      assert.strictEqual(await readFile(b, 'utf8'), 'shared', 'content via the new name');
      await unlink(a);
      assert.strictEqual(await readFile(b, 'utf8'), 'shared', 'content survives unlinking the first name');
      await link(b, a);
      await unlink(b);
      assert.strictEqual(await readFile(a, 'utf8'), 'shared', 'content survives unlinking the second name');
      await rejectsWith(link(a, a), 'EEXIST', 'link onto an existing name');
      assert.deepEqual(await names(root), ['a'], 'listing after the unlinks');
    },
  },
  {
    name: 'hardlink: writes and nlink are seen through every name',
    async run(root) {
      const a = join(root, 'a');
      const b = join(root, 'b');
      const c = join(root, 'c');
      await writeFile(a, 'one');
      assert.strictEqual((await stat(a)).nlink, 1, 'nlink of a new file');
      await link(a, b);
      assert.strictEqual((await stat(a)).nlink, 2, 'nlink via the old name after one link');
      await link(b, c);
      for (const p of [a, b, c]) assert.strictEqual((await stat(p)).nlink, 3, `nlink via ${p} after two links`);
      await appendFile(b, '+two');
      assert.strictEqual(await readFile(a, 'utf8'), 'one+two', 'append through one name is read through another');
      assert.strictEqual((await stat(c)).size, 7, 'size via a third name after the append');
      await unlink(a);
      for (const p of [b, c]) assert.strictEqual((await stat(p)).nlink, 2, `nlink via ${p} after unlinking one name`);
    },
  },
  {
    name: 'unlink: an open file stays readable and writable through its fd',
    async run(root) {
      const p = join(root, 'doomed');
      await writeFile(p, 'still here');
      const fh = await open(p, 'r+');
      try {
        await unlink(p);
        await rejectsWith(stat(p), 'ENOENT', 'stat after unlink');
        const buf = Buffer.alloc(10);
        await fh.read(buf, 0, 10, 0);
        assert.strictEqual(buf.toString(), 'still here', 'read through fd after unlink');
        await fh.write(Buffer.from('!'), 0, 1, 10);
        const again = Buffer.alloc(11);
        await fh.read(again, 0, 11, 0);
        assert.strictEqual(again.toString(), 'still here!', 'write then read through fd after unlink');
        await writeFile(p, 'new file');
        assert.strictEqual(await readFile(p, 'utf8'), 'new file', 'the name can be reused at once');
        await fh.read(again, 0, 11, 0);
        assert.strictEqual(again.toString(), 'still here!', 'old fd still sees the old file');
      } finally {
        await fh.close();
      }
    },
  },
  {
    name: 'unlink: an open unlinked file has nlink 0 and no name in its directory',
    async run(root) {
      const p = join(root, 'doomed');
      await writeFile(p, 'x');
      const fh = await open(p, 'r');
      try {
        await unlink(p);
        assert.strictEqual((await fh.stat()).nlink, 0, 'fstat nlink after the last name is gone');
        assert.deepEqual(await readdir(root), [], 'directory listing while the file is still open');
      } finally {
        await fh.close();
      }
    },
  },
  {
    name: 'rename: file within a directory keeps its inode',
    async run(root) {
      await writeFile(join(root, 'a'), 'payload');
      const ino = (await stat(join(root, 'a'))).ino;
      await rename(join(root, 'a'), join(root, 'b'));
      await rejectsWith(stat(join(root, 'a')), 'ENOENT', 'old name after rename');
      assert.strictEqual(await readFile(join(root, 'b'), 'utf8'), 'payload', 'content under the new name');
      assert.strictEqual((await stat(join(root, 'b'))).ino, ino, 'inode number survives rename');
      await rejectsWith(rename(join(root, 'missing'), join(root, 'c')), 'ENOENT', 'rename of a missing source');
    },
  },
  {
    name: 'rename: file over an existing file replaces it',
    async run(root) {
      await writeFile(join(root, 'src'), 'new');
      await writeFile(join(root, 'dst'), 'old old old');
      const srcIno = (await stat(join(root, 'src'))).ino;
      await rename(join(root, 'src'), join(root, 'dst'));
      assert.deepEqual(await names(root), ['dst'], 'one entry left');
      assert.strictEqual(await readFile(join(root, 'dst'), 'utf8'), 'new', 'target has the source content');
      assert.strictEqual((await stat(join(root, 'dst'))).ino, srcIno, 'target is now the source inode');
      assert.strictEqual((await stat(join(root, 'dst'))).nlink, 1, 'nlink of the replacing file');
    },
  },
  {
    name: 'rename: an fd open on the replaced file keeps the old content',
    async run(root) {
      await writeFile(join(root, 'src'), 'new');
      await writeFile(join(root, 'dst'), 'old');
      const fh = await open(join(root, 'dst'), 'r');
      try {
        await rename(join(root, 'src'), join(root, 'dst'));
        assert.strictEqual(await readFile(join(root, 'dst'), 'utf8'), 'new', 'path sees the new file');
        const buf = Buffer.alloc(3);
        await fh.read(buf, 0, 3, 0);
        assert.strictEqual(buf.toString(), 'old', 'open fd still reads the replaced file');
      } finally {
        await fh.close();
      }
    },
  },
  {
    name: 'rename: directory over an empty directory',
    async run(root) {
      await mkdir(join(root, 'a'));
      await writeFile(join(root, 'a', 'inside'), 'moved');
      await mkdir(join(root, 'b'));
      await rename(join(root, 'a'), join(root, 'b'));
      assert.deepEqual(await names(root), ['b'], 'only the target name remains');
      assert.strictEqual(await readFile(join(root, 'b', 'inside'), 'utf8'), 'moved', 'contents moved along');
    },
  },
  {
    name: 'rename: directory over a non-empty directory fails with ENOTEMPTY',
    async run(root) {
      await mkdir(join(root, 'a'));
      await mkdir(join(root, 'b'));
      await writeFile(join(root, 'b', 'keep'), 'k');
      await rejectsWith(rename(join(root, 'a'), join(root, 'b')), ['ENOTEMPTY', 'EEXIST'], 'rename onto a non-empty directory');
      assert.deepEqual(await names(root), ['a', 'b'], 'both directories survive');
      assert.deepEqual(await readdir(join(root, 'b')), ['keep'], 'target contents survive');
    },
  },
  {
    name: 'rename: file over a directory fails with EISDIR, directory over a file with ENOTDIR',
    async run(root) {
      await writeFile(join(root, 'f'), 'file');
      await mkdir(join(root, 'd'));
      await rejectsWith(rename(join(root, 'f'), join(root, 'd')), 'EISDIR', 'file over directory');
      await rejectsWith(rename(join(root, 'd'), join(root, 'f')), 'ENOTDIR', 'directory over file');
      await rejectsWith(rename(join(root, 'd'), join(root, 'd', 'inside')), 'EINVAL', 'directory into itself');
      assert.deepEqual(await names(root), ['d', 'f'], 'nothing moved');
    },
  },
  {
    name: 'rename: file and directory across directories',
    async run(root) {
      await mkdir(join(root, 'from', 'sub'), { recursive: true });
      await mkdir(join(root, 'to'));
      await writeFile(join(root, 'from', 'f'), 'file');
      await writeFile(join(root, 'from', 'sub', 'g'), 'nested');
      await rename(join(root, 'from', 'f'), join(root, 'to', 'f2'));
      await rename(join(root, 'from', 'sub'), join(root, 'to', 'sub'));
      assert.deepEqual(await readdir(join(root, 'from')), [], 'source directory emptied');
      assert.deepEqual(await names(join(root, 'to')), ['f2', 'sub'], 'target directory listing');
      assert.strictEqual(await readFile(join(root, 'to', 'f2'), 'utf8'), 'file', 'moved file content');
      assert.strictEqual(await readFile(join(root, 'to', 'sub', 'g'), 'utf8'), 'nested', 'moved subtree content');
      assert.strictEqual((await stat(join(root, 'to', 'sub', '..'))).ino, (await stat(join(root, 'to'))).ino, '".." of the moved directory is its new parent');
      await writeFile(join(root, 'to', 'sub', 'h'), 'after');
      assert.deepEqual(await names(join(root, 'to', 'sub')), ['g', 'h'], 'moved directory is usable');
    },
  },
  {
    name: 'rename: onto itself is a no-op',
    async run(root) {
      await writeFile(join(root, 'f'), 'same');
      await mkdir(join(root, 'd'));
      await writeFile(join(root, 'd', 'x'), 'x');
      await rename(join(root, 'f'), join(root, 'f'));
      await rename(join(root, 'd'), join(root, 'd'));
      await link(join(root, 'f'), join(root, 'f-link'));
      await rename(join(root, 'f'), join(root, 'f-link'));
      assert.deepEqual(await names(root), ['d', 'f', 'f-link'], 'renaming onto the same file (or a hard link of it) keeps both names');
      assert.strictEqual(await readFile(join(root, 'f'), 'utf8'), 'same', 'content kept');
      assert.deepEqual(await readdir(join(root, 'd')), ['x'], 'directory contents kept');
    },
  },
  {
    name: 'inode: numbers are stable across lookups, reopen and rename',
    async run(root) {
      const f = join(root, 'f');
      await writeFile(f, 'x');
      await mkdir(join(root, 'd'));
      const ino = (await stat(f)).ino;
      const dino = (await stat(join(root, 'd'))).ino;
      assert.notStrictEqual(ino, dino, 'different objects have different inode numbers');
      for (let i = 0; i < 3; i++) {
        assert.strictEqual((await stat(f)).ino, ino, `stat #${i}`);
        assert.strictEqual((await lstat(f)).ino, ino, `lstat #${i}`);
        assert.strictEqual((await withFile(f, 'r', (fh) => fh.stat())).ino, ino, `fstat after open #${i}`);
      }
      await rename(f, join(root, 'd', 'moved'));
      assert.strictEqual((await stat(join(root, 'd', 'moved'))).ino, ino, 'after rename into a subdirectory');
      await rename(join(root, 'd'), join(root, 'd2'));
      assert.strictEqual((await stat(join(root, 'd2'))).ino, dino, 'directory after rename');
      assert.strictEqual((await stat(join(root, 'd2', 'moved'))).ino, ino, 'file inside a renamed directory');
    },
  },
];
