// Four processes at once: each writes its own file in 64 KiB chunks and
// interleaves fixed-size records into one shared O_APPEND log.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { assert } from 'chai';
import { runNode } from '../../helpers/exec.js';
import { treeManifest } from '../../helpers/tree-manifest.js';
import type { Workload } from './types.js';

const WRITERS = 4;
const CHUNKS = 64; // x 64 KiB = 4 MiB per private file
const RECORD = 128;

const WRITER = `
const fs = require('fs');
const crypto = require('crypto');
const [dir, id, chunks, recLen] = process.argv.slice(1);
const file = fs.openSync(dir + '/writer-' + id + '.bin', 'w');
const log = fs.openSync(dir + '/shared.log', 'a');
for (let i = 0; i < +chunks; i++) {
  const seed = crypto.createHash('sha256').update(id + ':' + i).digest();
  const chunk = Buffer.alloc(65536);
  for (let o = 0; o < chunk.length; o += 32) seed.copy(chunk, o);
  if (fs.writeSync(file, chunk) !== chunk.length) throw new Error('short write');
  const rec = ('w' + id + ' ' + String(i).padStart(6, '0') + ' ').padEnd(+recLen - 1, '.') + '\\n';
  if (fs.writeSync(log, rec) !== +recLen) throw new Error('short append');
}
fs.fsyncSync(file);
fs.closeSync(file);
fs.closeSync(log);
`;

function expectedFileHash(id: number): string {
  const h = createHash('sha256');
  for (let i = 0; i < CHUNKS; i++) {
    const seed = createHash('sha256').update(`${id}:${i}`).digest();
    const chunk = Buffer.alloc(65536);
    for (let o = 0; o < chunk.length; o += 32) seed.copy(chunk, o);
    h.update(chunk);
  }
  return h.digest('hex');
}

export const concurrentWorkload: Workload = {
  name: 'concurrent writers: private files and a shared O_APPEND log',
  async run(root) {
    const ids = [...Array(WRITERS).keys()];
    const results = await Promise.all(ids.map((id) => runNode(WRITER, [root, String(id), String(CHUNKS), String(RECORD)], { timeoutMs: 60_000 })));
    results.forEach((r, id) => assert.strictEqual(r.code, 0, `writer ${id} failed: ${r.stderr}`));
    for (const id of ids) {
      const data = await readFile(join(root, `writer-${id}.bin`));
      assert.strictEqual(data.length, CHUNKS * 65536, `size of writer-${id}.bin`);
      assert.strictEqual(createHash('sha256').update(data).digest('hex'), expectedFileHash(id), `content of writer-${id}.bin`);
    }
    const log = await readFile(join(root, 'shared.log'), 'latin1');
    assert.strictEqual(log.length, WRITERS * CHUNKS * RECORD, 'shared log size: appends lost or overlapping');
    const records: string[] = [];
    const next = ids.map(() => 0);
    for (let off = 0; off < log.length; off += RECORD) {
      const rec = log.slice(off, off + RECORD);
      const m = /^w(\d) (\d{6}) \.+\n$/.exec(rec);
      assert.isNotNull(m, `torn record at offset ${off}: ${JSON.stringify(rec)}`);
      const [id, seq] = [Number(m![1]), Number(m![2])];
      assert.strictEqual(seq, next[id]++, `records of writer ${id} out of order at offset ${off}`);
      records.push(rec);
    }
    // The interleaving differs run to run; the set of records must not.
    const sortedLog = createHash('sha256').update(records.sort().join('')).digest('hex');
    const files = await treeManifest(root, { times: false, exclude: (rel) => rel === 'shared.log' });
    return `${files}shared.log sorted records sha256=${sortedLog}\n`;
  },
};
