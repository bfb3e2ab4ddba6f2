// Regular files: create, read, write, append, offsets, sizes, sync.
import { randomBytes } from 'node:crypto';
import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { appendFile, open, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runNode } from '../../helpers/exec.js';
import { assert, isZero, rejectsWith, sha256, withFile } from './expect.js';
import type { Check } from './types.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

async function hashFile(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 192 * 1024 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Deterministic pseudo-random generator (xorshift32) for reproducible offsets. */
function rng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

export const fileChecks: Check[] = [
  {
    name: 'file: create, write and read back',
    async run(root) {
      const p = join(root, 'a.txt');
      await writeFile(p, 'hello, world\n', { flag: 'wx' });
      const st = await stat(p);
      assert.isTrue(st.isFile(), 'new file is a regular file');
      assert.strictEqual(st.size, 13, 'size of new file');
      assert.strictEqual(await readFile(p, 'utf8'), 'hello, world\n', 'content read back');
      await writeFile(p, 'replaced');
      assert.strictEqual(await readFile(p, 'utf8'), 'replaced', 'content after rewrite with O_TRUNC');
    },
  },
  {
    name: 'file: O_APPEND writes go to the end',
    async run(root) {
      const p = join(root, 'log');
      await writeFile(p, 'abc');
      await withFile(p, 'a', async (fh) => {
        await fh.write('def');
        await fh.write('gh');
      });
      await appendFile(p, 'ij');
      assert.strictEqual(await readFile(p, 'utf8'), 'abcdefghij', 'appended content');
    },
  },
  {
    name: 'file: O_CREAT|O_EXCL on an existing file fails with EEXIST',
    async run(root) {
      const p = join(root, 'x');
      await writeFile(p, 'keep', { flag: 'wx' });
      await rejectsWith(writeFile(p, 'clobber', { flag: 'wx' }), 'EEXIST', 'second O_EXCL create');
      assert.strictEqual(await readFile(p, 'utf8'), 'keep', 'content untouched by failed O_EXCL');
    },
  },
  {
    name: 'file: O_TRUNC empties an existing file in place',
    async run(root) {
      const p = join(root, 't');
      await writeFile(p, Buffer.alloc(100_000, 0x41));
      const before = await stat(p);
      await withFile(p, constants.O_RDWR | constants.O_TRUNC, async (fh) => {
        assert.strictEqual((await fh.stat()).size, 0, 'size right after open(O_TRUNC)');
        await fh.write('xy');
      });
      assert.strictEqual(await readFile(p, 'utf8'), 'xy', 'content after truncating open');
      assert.strictEqual((await stat(p)).ino, before.ino, 'O_TRUNC keeps the inode');
    },
  },
  {
    name: 'file: pwrite and pread at offsets, gaps read as zeros',
    async run(root) {
      const fh = await open(join(root, 'p'), 'w+');
      try {
        await fh.write(Buffer.from('AAAA'), 0, 4, 0);
        await fh.write(Buffer.from('BB'), 0, 2, 10);
        await fh.write(Buffer.from('C'), 0, 1, 2);
        assert.strictEqual((await fh.stat()).size, 12, 'size after write beyond EOF');
        const all = Buffer.alloc(16);
        const { bytesRead } = await fh.read(all, 0, 16, 0);
        assert.strictEqual(bytesRead, 12, 'bytes read from start');
        assert.deepEqual([...all.subarray(0, 12)], [...Buffer.from('AACA\0\0\0\0\0\0BB', 'latin1')], 'whole content');
        const mid = Buffer.alloc(4);
        assert.strictEqual((await fh.read(mid, 0, 4, 8)).bytesRead, 4, 'pread length at offset 8');
        assert.strictEqual(mid.toString('latin1'), '\0\0BB', 'pread at offset 8');
        assert.strictEqual((await fh.read(Buffer.alloc(4), 0, 4, 12)).bytesRead, 0, 'pread at EOF returns 0 bytes');
      } finally {
        await fh.close();
      }
    },
  },
  {
    name: 'file: random unaligned pwrites match an in-memory model',
    async run(root) {
      const size = 3 * MiB + 123;
      const model = Buffer.alloc(size);
      const fh = await open(join(root, 'model'), 'w+');
      try {
        const next = rng(20240611);
        for (let i = 0; i < 200; i++) {
          const len = 1 + next(200_000);
          const off = next(size - len);
          const data = randomBytes(len);
          data.copy(model, off);
          await fh.write(data, 0, len, off);
        }
        await fh.truncate(size);
        for (let i = 0; i < 50; i++) {
          const len = 1 + next(300_000);
          const off = next(size - len);
          const got = Buffer.alloc(len);
          await fh.read(got, 0, len, off);
          assert.isTrue(got.equals(model.subarray(off, off + len)), `pread(${off}, ${len}) differs from the model`);
        }
      } finally {
        await fh.close();
      }
      assert.strictEqual(sha256(await readFile(join(root, 'model'))), sha256(model), 'whole file hash');
    },
  },
  {
    name: 'file: 64 MiB written in 1 MiB writes reads back with the same hash',
    async run(root) {
      const p = join(root, 'big');
      const h = createHash('sha256');
      const fh = await open(p, 'w');
      try {
        for (let i = 0; i < 64; i++) {
          const chunk = randomBytes(MiB);
          h.update(chunk);
          const { bytesWritten } = await fh.write(chunk);
          assert.strictEqual(bytesWritten, MiB, `short write at chunk ${i}`);
        }
      } finally {
        await fh.close();
      }
      assert.strictEqual((await stat(p)).size, 64 * MiB, 'size of the big file');
      assert.strictEqual(await hashFile(p), h.digest('hex'), 'SHA-256 of data read back');
    },
  },
  {
    name: 'file: sparse file with data at 1 GiB',
    async run(root) {
      const p = join(root, 'sparse');
      const tail = Buffer.alloc(4096, 0xab);
      await withFile(p, 'w', (fh) => fh.write(tail, 0, tail.length, GiB));
      const st = await stat(p);
      assert.strictEqual(st.size, GiB + 4096, 'size of sparse file');
      assert.isBelow(st.blocks * 512, 16 * MiB, `st_blocks (${st.blocks}) must show the hole is not allocated`);
      const rd = await open(p, 'r');
      try {
        for (const off of [0, 4096, 512 * MiB + 17, GiB - 65536]) {
          const buf = Buffer.alloc(65536, 0xff);
          const { bytesRead } = await rd.read(buf, 0, buf.length, off);
          assert.strictEqual(bytesRead, buf.length, `read length inside the hole at ${off}`);
          assert.isTrue(isZero(buf), `hole at offset ${off} must read as zeros`);
        }
        const got = Buffer.alloc(8192);
        const { bytesRead } = await rd.read(got, 0, got.length, GiB - 4096);
        assert.strictEqual(bytesRead, 8192, 'read across the end of the hole');
        assert.isTrue(isZero(got.subarray(0, 4096)), 'hole before the data');
        assert.isTrue(got.subarray(4096).equals(tail), 'data after the hole');
      } finally {
        await rd.close();
      }
    },
  },
  {
    name: 'truncate: grow fills with zeros, shrink discards the tail',
    async run(root) {
      const p = join(root, 'tr');
      await writeFile(p, '0123456789');
      await truncate(p, 4);
      assert.strictEqual(await readFile(p, 'latin1'), '0123', 'content after shrink');
      await truncate(p, 200_000);
      const grown = await readFile(p);
      assert.strictEqual(grown.length, 200_000, 'size after grow');
      assert.strictEqual(grown.subarray(0, 4).toString(), '0123', 'prefix kept on grow');
      assert.isTrue(isZero(grown.subarray(4)), 'grown region reads as zeros (no stale data from the shrunk tail)');
      await truncate(p, 0);
      assert.strictEqual((await stat(p)).size, 0, 'size after truncate to 0');
    },
  },
  {
    name: 'ftruncate: shrink and grow through an open fd',
    async run(root) {
      const p = join(root, 'ft');
      const fh = await open(p, 'w+');
      try {
        await fh.write(Buffer.alloc(10_000, 0x61), 0, 10_000, 0);
        await fh.truncate(3000);
        assert.strictEqual((await fh.stat()).size, 3000, 'fstat size after ftruncate shrink');
        assert.strictEqual((await stat(p)).size, 3000, 'stat by path sees the shrink');
        await fh.truncate(9000);
        const buf = Buffer.alloc(9000);
        await fh.read(buf, 0, 9000, 0);
        assert.isTrue(buf.subarray(0, 3000).equals(Buffer.alloc(3000, 0x61)), 'kept part');
        assert.isTrue(isZero(buf.subarray(3000)), 'regrown part is zero, not the old data');
        await fh.write(Buffer.from('z'), 0, 1, 8999);
      } finally {
        await fh.close();
      }
      const content = await readFile(p);
      assert.strictEqual(content.length, 9000, 'final size');
      assert.strictEqual(content[8999], 0x7a, 'write after ftruncate');
    },
  },
  {
    name: 'fsync: fsync and fdatasync on a file and fsync on a directory',
    async run(root) {
      const p = join(root, 'synced');
      await withFile(p, 'w', async (fh) => {
        await fh.write('durable data');
        await fh.sync();
        await fh.write(' more');
        await fh.datasync();
      });
      await withFile(root, 'r', (dir) => dir.sync());
      assert.strictEqual(await readFile(p, 'utf8'), 'durable data more', 'content after syncs');
    },
  },
  {
    name: 'O_APPEND: concurrent appends from two processes lose no record',
    async run(root) {
      const p = join(root, 'shared.log');
      const records = 400;
      const len = 64;
      const writer = `
        const fs = require('fs');
        const [path, id, n, len] = process.argv.slice(1);
        const fd = fs.openSync(path, 'a');
        for (let i = 0; i < +n; i++) {
          const rec = (id + ' ' + String(i).padStart(6, '0') + ' ').padEnd(+len - 1, id) + '\\n';
          if (fs.writeSync(fd, rec) !== +len) throw new Error('short write');
        }
        fs.closeSync(fd);`;
      const results = await Promise.all(['A', 'B'].map((id) => runNode(writer, [p, id, String(records), String(len)])));
      for (const r of results) assert.strictEqual(r.code, 0, `appender failed: ${r.stderr}`);
      const text = await readFile(p, 'latin1');
      assert.strictEqual(text.length, 2 * records * len, 'total size: every append must land at the then-current end');
      const seen: Record<string, number[]> = { A: [], B: [] };
      for (let off = 0; off < text.length; off += len) {
        const rec = text.slice(off, off + len);
        const m = /^([AB]) (\d{6}) \1+\n$/.exec(rec);
        assert.isNotNull(m, `record at offset ${off} is torn or overwritten: ${JSON.stringify(rec)}`);
        seen[m![1]].push(Number(m![2]));
      }
      for (const id of ['A', 'B']) {
        assert.deepEqual(seen[id], [...Array(records).keys()], `records of writer ${id} complete and in order`);
      }
    },
  },
];
