// The workload table: real tools run inside a root path, each returning a
// fingerprint to compare with the same run on a plain directory.
import { concurrentWorkload } from './concurrent.js';
import { gitWorkload } from './git.js';
import { sqliteWorkload } from './sqlite.js';
import { copyWorkloads } from './tools.js';
import type { Workload } from './types.js';

export type { Fixtures, Workload, WorkloadContext } from './types.js';

export const workloads: Workload[] = [...copyWorkloads, gitWorkload, sqliteWorkload, concurrentWorkload];
