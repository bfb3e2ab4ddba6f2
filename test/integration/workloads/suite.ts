// Mocha runner for the workload table against any mount path.
import { chmod, mkdir, mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { firstLine } from '../../helpers/errors.js';
import { makeTempDir, removeTree, slug } from '../../helpers/tmp.js';
import { assertSameManifest } from '../../helpers/tree-manifest.js';
import { buildFixtures } from './fixtures.js';
import type { WorkloadContext } from './types.js';
import { workloads } from './workloads.js';

export interface WorkloadOptions {
  /** Workload names known to fail here; each must still fail (see runConformance). */
  expectedFailures?: string[];
}

interface Shared {
  base: string;
  ctx: WorkloadContext;
  /** Baseline fingerprint per workload, computed once per process on a plain directory. */
  baselines: Map<string, Promise<string>>;
}

// Fixtures and baselines are built once per mocha process and shared by every
// runWorkloads() suite; a root-level after() hook removes them at the end.
let shared: Promise<Shared> | undefined;

function getShared(): Promise<Shared> {
  shared ??= (async () => {
    const base = await makeTempDir('workloads');
    const ctx = { fixtures: await buildFixtures(await subdir(base, 'fixtures')), scratch: await subdir(base, 'scratch') };
    await subdir(base, 'baseline');
    return { base, ctx, baselines: new Map() };
  })();
  return shared;
}

after(async function () {
  this.timeout(30_000);
  const s = await shared?.catch(() => undefined);
  if (s) await removeTree(s.base);
  shared = undefined;
});

async function subdir(parent: string, name: string): Promise<string> {
  const dir = join(parent, name);
  await mkdir(dir, { mode: 0o755 });
  return dir;
}

async function freshDir(parent: string, name: string): Promise<string> {
  const dir = await mkdtemp(join(parent, `${slug(name)}-`));
  await chmod(dir, 0o755);
  return dir;
}

function baseline(s: Shared, name: string, run: (root: string) => Promise<string>): Promise<string> {
  let p = s.baselines.get(name);
  if (!p) {
    p = (async () => {
      const dir = await freshDir(join(s.base, 'baseline'), name);
      try {
        return await run(dir);
      } finally {
        await removeTree(dir);
      }
    })();
    s.baselines.set(name, p);
  }
  return p;
}

/**
 * Registers one mocha test per workload under `describeName`. Each runs the
 * workload in a fresh directory of getRoot() and requires the same
 * fingerprint as the same workload on a plain temp directory.
 */
export function runWorkloads(describeName: string, getRoot: () => string, opts: WorkloadOptions = {}): void {
  const expected = new Set(opts.expectedFailures ?? []);
  const unknown = [...expected].filter((n) => !workloads.some((w) => w.name === n));
  if (unknown.length > 0) throw new Error(`expectedFailures names no workload: ${unknown.map((n) => JSON.stringify(n)).join(', ')}`);

  describe(describeName, function () {
    before(async function () {
      this.timeout(30_000);
      await getShared();
    });

    for (const workload of workloads) {
      const xfail = expected.has(workload.name);
      it(xfail ? `${workload.name} [expected failure]` : workload.name, async function () {
        const s = await getShared();
        const want = await baseline(s, workload.name, (dir) => workload.run(dir, s.ctx));
        const dir = await freshDir(getRoot(), workload.name);
        let failure: unknown;
        try {
          const got = await workload.run(dir, s.ctx);
          assertSameManifest(got, want, `${workload.name}: result under ${getRoot()} differs from a plain directory`);
        } catch (e) {
          failure = e;
        }
        try {
          await removeTree(dir);
        } catch (e) {
          failure ??= new Error(`workload passed but removing its directory failed: ${(e as Error).message}`);
        }
        if (xfail) {
          if (failure === undefined) throw new Error(`"${workload.name}" is listed in expectedFailures but passed; remove it from the list`);
          this.test!.title = `${workload.name} [expected failure: ${firstLine(failure)}]`;
          return;
        }
        if (failure !== undefined) throw failure;
      });
    }
  });
}
