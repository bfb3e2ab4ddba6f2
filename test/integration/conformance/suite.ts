// Mocha runner for the conformance table. Import runConformance from here
// (or from plain.test.ts, which re-exports it) and hand it a mount path.
import { mkdtemp, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { firstLine } from '../../helpers/errors.js';
import { removeTree, slug } from '../../helpers/tmp.js';
import { checks } from './checks.js';
import type { CheckContext } from './types.js';

export interface ConformanceOptions {
  /**
   * Check names this file system is known to fail. Each is still run and must
   * fail; if it passes, the test fails so the entry gets removed. Give the
   * reason in a comment next to the list.
   */
  expectedFailures?: string[];
}

/**
 * Registers one mocha test per conformance check under `describeName`.
 * `getRoot` is called when a test runs (so a before() hook may mount first);
 * each check gets a fresh 0755 subdirectory of it, removed afterwards.
 */
export function runConformance(describeName: string, getRoot: () => string, opts: ConformanceOptions = {}): void {
  const expected = new Set(opts.expectedFailures ?? []);
  const unknown = [...expected].filter((n) => !checks.some((c) => c.name === n));
  if (unknown.length > 0) throw new Error(`expectedFailures names no check: ${unknown.map((n) => JSON.stringify(n)).join(', ')}`);

  describe(describeName, function () {
    for (const check of checks) {
      const xfail = expected.has(check.name);
      it(xfail ? `${check.name} [expected failure]` : check.name, async function () {
        const mountRoot = getRoot();
        const ctx: CheckContext = { mountRoot, nobody: { uid: 65534, gid: 65534 } };
        const dir = await mkdtemp(join(mountRoot, `${slug(check.name)}-`));
        await chmod(dir, 0o755);
        let failure: unknown;
        try {
          await check.run(dir, ctx);
        } catch (e) {
          failure = e;
        }
        try {
          await removeTree(dir);
        } catch (e) {
          failure ??= new Error(`check passed but removing its directory failed: ${(e as Error).message}`);
        }
        if (xfail) {
          if (failure === undefined) throw new Error(`"${check.name}" is listed in expectedFailures but passed; remove it from the list`);
          this.test!.title = `${check.name} [expected failure: ${firstLine(failure)}]`;
          return;
        }
        if (failure !== undefined) throw failure;
      });
    }
  });
}
