import type { Identity } from '../../helpers/as-user.js';

export interface CheckContext {
  /** Top of the file system under test; `root` is a fresh directory somewhere below it. */
  mountRoot: string;
  /** Unprivileged identity for permission checks (65534:65534 unless overridden). */
  nobody: Identity;
}

export interface Check {
  /** Unique, stable name: "area: behaviour". Used in expectedFailures lists. */
  name: string;
  /** Works only inside `root`; throws an assertion error on non-conformance. */
  run(root: string, ctx: CheckContext): Promise<void>;
}
