// The conformance table: every named check, in one list, runnable against any
// mount path (see suite.ts for the mocha runner).
import { attrChecks } from './attrs.js';
import { dirChecks } from './dirs.js';
import { fileChecks } from './files.js';
import { linkChecks } from './links.js';
import { permChecks } from './perms.js';
import type { Check } from './types.js';

export type { Check, CheckContext } from './types.js';

export const checks: Check[] = [...fileChecks, ...dirChecks, ...linkChecks, ...attrChecks, ...permChecks];

const seen = new Set<string>();
for (const c of checks) {
  if (seen.has(c.name)) throw new Error(`duplicate conformance check name: ${c.name}`);
  seen.add(c.name);
}
