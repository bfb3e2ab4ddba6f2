// sqlite3 with a rollback journal and synchronous=FULL: many small
// transactions, each creating, fsyncing and deleting its journal.
import { join } from 'node:path';
import { assert } from 'chai';
import { createHash } from 'node:crypto';
import { runOk } from '../../helpers/exec.js';
import { treeManifest } from '../../helpers/tree-manifest.js';
import type { Workload } from './types.js';

const TXNS = 30;
const ROWS = 50;

function script(): string {
  const sql = [
    'PRAGMA journal_mode=DELETE;',
    'PRAGMA synchronous=FULL;',
    'CREATE TABLE item(id INTEGER PRIMARY KEY, k TEXT NOT NULL, v BLOB NOT NULL);',
    'CREATE INDEX item_k ON item(k);',
  ];
  for (let t = 0; t < TXNS; t++) {
    sql.push('BEGIN;');
    for (let r = 0; r < ROWS; r++) {
      const n = t * ROWS + r;
      // 600 bytes of per-row data: enough to spill onto many pages.
      sql.push(`INSERT INTO item(k, v) VALUES ('key-${(n * 7919) % 10007}', zeroblob(${400 + (n % 200)}) || X'${n.toString(16).padStart(8, '0')}');`);
    }
    sql.push('COMMIT;');
  }
  sql.push('BEGIN;', "UPDATE item SET k = k || '-updated' WHERE id % 7 = 0;", 'DELETE FROM item WHERE id % 11 = 0;', 'COMMIT;');
  return sql.join('\n');
}

export const sqliteWorkload: Workload = {
  name: 'sqlite3 transactions with fsync',
  async run(root) {
    const db = join(root, 'test.db');
    await runOk('sqlite3', ['-bail', db], { input: script(), timeoutMs: 60_000 });
    const q = async (sql: string) => (await runOk('sqlite3', ['-bail', db, sql])).stdout.trim();
    assert.strictEqual(await q('PRAGMA integrity_check;'), 'ok', 'sqlite integrity_check');
    const total = TXNS * ROWS;
    const expected = total - Math.floor(total / 11);
    assert.strictEqual(Number(await q('SELECT count(*) FROM item;')), expected, 'rows after inserts and deletes');
    assert.strictEqual(Number(await q("SELECT count(*) FROM item WHERE k LIKE '%-updated';")), Math.floor(total / 7) - Math.floor(total / 77), 'updated rows');
    const dump = (await runOk('sqlite3', [db, '.dump'])).stdout;
    const dumpHash = createHash('sha256').update(dump).digest('hex');
    // The journal must be gone and the database file byte-identical to the baseline.
    return `dump sha256=${dumpHash}\n${await treeManifest(root, { times: false })}`;
  },
};
