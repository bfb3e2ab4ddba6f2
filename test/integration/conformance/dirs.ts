// Directories, listing, names and special files.
import { mkdir, readdir, readFile, rename, rmdir, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run, runOk } from '../../helpers/exec.js';
import { assert, names, rejectsWith } from './expect.js';
import type { Check } from './types.js';

export const dirChecks: Check[] = [
  {
    name: 'mkdir: creates a directory; EEXIST when the name exists',
    async run(root) {
      const d = join(root, 'd');
      await mkdir(d);
      assert.isTrue((await stat(d)).isDirectory(), 'new entry is a directory');
      assert.deepEqual(await readdir(d), [], 'new directory is empty');
      await rejectsWith(mkdir(d), 'EEXIST', 'mkdir over a directory');
      await writeFile(join(root, 'f'), '');
      await rejectsWith(mkdir(join(root, 'f')), 'EEXIST', 'mkdir over a file');
    },
  },
  {
    name: 'mkdir: ENOENT for a missing parent, ENOTDIR for a file parent',
    async run(root) {
      await rejectsWith(mkdir(join(root, 'missing', 'd')), 'ENOENT', 'mkdir under a missing parent');
      await writeFile(join(root, 'file'), 'x');
      await rejectsWith(mkdir(join(root, 'file', 'd')), 'ENOTDIR', 'mkdir under a regular file');
      await rejectsWith(stat(join(root, 'file', 'x')), 'ENOTDIR', 'lookup through a regular file');
    },
  },
  {
    name: 'rmdir: removes an empty directory, then ENOENT',
    async run(root) {
      const d = join(root, 'd');
      await mkdir(d);
      await rmdir(d);
      await rejectsWith(stat(d), 'ENOENT', 'stat after rmdir');
      await rejectsWith(rmdir(d), 'ENOENT', 'second rmdir');
      assert.deepEqual(await readdir(root), [], 'parent listing after rmdir');
    },
  },
  {
    name: 'rmdir: non-empty directory fails with ENOTEMPTY',
    async run(root) {
      const d = join(root, 'd');
      await mkdir(join(d, 'sub'), { recursive: true });
      await rejectsWith(rmdir(d), ['ENOTEMPTY', 'EEXIST'], 'rmdir of a directory holding a directory');
      await rmdir(join(d, 'sub'));
      await writeFile(join(d, 'f'), '');
      await rejectsWith(rmdir(d), ['ENOTEMPTY', 'EEXIST'], 'rmdir of a directory holding a file');
      assert.deepEqual(await readdir(d), ['f'], 'contents survive the failed rmdir');
    },
  },
  {
    name: 'rmdir/unlink: ENOTDIR on a file, EISDIR on a directory',
    async run(root) {
      await writeFile(join(root, 'f'), '');
      await mkdir(join(root, 'd'));
      await rejectsWith(rmdir(join(root, 'f')), 'ENOTDIR', 'rmdir of a regular file');
      await rejectsWith(unlink(join(root, 'd')), ['EISDIR', 'EPERM'], 'unlink of a directory');
      assert.deepEqual(await names(root), ['d', 'f'], 'both entries survive');
    },
  },
  {
    name: 'readdir: lists exactly the entries created, with their types',
    async run(root) {
      for (let i = 0; i < 10; i++) await writeFile(join(root, `file${i}`), String(i));
      await mkdir(join(root, 'dir'));
      await symlink('file0', join(root, 'link'));
      const entries = await readdir(root, { withFileTypes: true });
      const got = entries.map((e) => `${e.name}:${e.isFile() ? 'f' : e.isDirectory() ? 'd' : e.isSymbolicLink() ? 'l' : '?'}`).sort();
      const want = [...Array(10).keys()].map((i) => `file${i}:f`).concat('dir:d', 'link:l').sort();
      assert.deepEqual(got, want, 'readdir names and types');
    },
  },
  {
    name: 'readdir: 1000 entries with long names are each listed once',
    async run(root) {
      const want: string[] = [];
      for (let i = 0; i < 1000; i++) want.push(`entry-${String(i).padStart(4, '0')}-${'n'.repeat(100)}`);
      for (let i = 0; i < want.length; i += 50) {
        await Promise.all(want.slice(i, i + 50).map((n) => writeFile(join(root, n), '')));
      }
      const got = await readdir(root);
      assert.strictEqual(got.length, 1000, 'number of entries (duplicates or losses across readdir pages)');
      assert.deepEqual(got.sort(), want, 'entry names');
    },
  },
  {
    name: 'readdir: reflects unlink, rename and rmdir immediately',
    async run(root) {
      await writeFile(join(root, 'a'), '');
      await writeFile(join(root, 'b'), '');
      await mkdir(join(root, 'c'));
      assert.deepEqual(await names(root), ['a', 'b', 'c'], 'initial listing');
      await unlink(join(root, 'a'));
      await rename(join(root, 'b'), join(root, 'b2'));
      await rmdir(join(root, 'c'));
      await writeFile(join(root, 'd'), '');
      assert.deepEqual(await names(root), ['b2', 'd'], 'listing after changes');
    },
  },
  {
    name: 'path: 40-level deep directory tree',
    async run(root) {
      const parts = [...Array(40).keys()].map((i) => `level-${String(i).padStart(2, '0')}-${'d'.repeat(40)}`);
      const deep = join(root, ...parts);
      await mkdir(deep, { recursive: true });
      await writeFile(join(deep, 'leaf.txt'), 'bottom');
      assert.strictEqual(await readFile(join(deep, 'leaf.txt'), 'utf8'), 'bottom', 'file at the bottom');
      assert.deepEqual(await readdir(join(root, ...parts.slice(0, 39))), [parts[39]], 'listing one level up');
      const found = await runOk('find', [root, '-name', 'leaf.txt']);
      assert.strictEqual(found.stdout.trim(), join(deep, 'leaf.txt'), 'find walks the whole depth');
    },
  },
  {
    name: 'names: spaces, unicode, odd bytes and 255-byte names round-trip',
    async run(root) {
      const want = [
        'with space',
        ' leading and trailing ',
        'ünïcødé-日本語-🎉',
        'caf\u00e9', // NFC
        'cafe\u0301', // NFD: a different name, must not be normalised into the NFC one
        'line\nbreak',
        'tab\tand\\backslash',
        "quote'\"*?[x]",
        '-dash',
        'a'.repeat(255),
        '日'.repeat(85), // 255 bytes of UTF-8
      ];
      for (const n of want) await writeFile(join(root, n), n);
      assert.deepEqual(await names(root), [...want].sort(), 'listing returns the exact names');
      for (const n of want) assert.strictEqual(await readFile(join(root, n), 'utf8'), n, `content of ${JSON.stringify(n)}`);
      await mkdir(join(root, 'b'.repeat(255)));
      assert.isTrue((await stat(join(root, 'b'.repeat(255)))).isDirectory(), '255-byte directory name');
    },
  },
  {
    name: 'names: a 256-byte name fails with ENAMETOOLONG',
    async run(root) {
      const long = 'x'.repeat(256);
      await rejectsWith(writeFile(join(root, long), ''), 'ENAMETOOLONG', 'create with a 256-byte name');
      await rejectsWith(mkdir(join(root, long)), 'ENAMETOOLONG', 'mkdir with a 256-byte name');
      await rejectsWith(stat(join(root, long)), 'ENAMETOOLONG', 'lookup of a 256-byte name');
      await writeFile(join(root, 'ok'), '');
      await rejectsWith(rename(join(root, 'ok'), join(root, 'é'.repeat(128))), 'ENAMETOOLONG', 'rename to a 256-byte UTF-8 name');
      assert.deepEqual(await readdir(root), ['ok'], 'nothing was created');
    },
  },
  {
    name: 'mknod: FIFO is created and carries data between processes',
    async run(root) {
      const fifo = join(root, 'fifo');
      await runOk('mkfifo', ['-m', '0640', fifo]);
      const st = await stat(fifo);
      assert.isTrue(st.isFIFO(), 'mkfifo creates a FIFO');
      assert.strictEqual(st.mode & 0o777, 0o640, 'FIFO permission bits');
      assert.strictEqual(st.size, 0, 'FIFO size');
      const reader = run('cat', [fifo], { timeoutMs: 10_000 });
      const writer = await run('sh', ['-c', 'printf "through the pipe" > "$1"', 'sh', fifo], { timeoutMs: 10_000 });
      assert.strictEqual(writer.code, 0, `writer failed: ${writer.stderr}`);
      assert.strictEqual((await reader).stdout, 'through the pipe', 'data read from the FIFO');
    },
  },
  {
    name: 'mknod: character device node keeps its type and device number',
    async run(root) {
      const dev = join(root, 'null-copy');
      await runOk('mknod', ['-m', '0600', dev, 'c', '1', '3']);
      const st = await stat(dev);
      assert.isTrue(st.isCharacterDevice(), 'node is a character device');
      assert.strictEqual(st.rdev, (1 << 8) | 3, 'st_rdev is makedev(1, 3)');
      assert.strictEqual(st.mode & 0o7777, 0o600, 'device node permission bits');
    },
  },
];
