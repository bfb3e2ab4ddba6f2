export interface Fixtures {
  /** A source tree: part of /usr/include/linux plus odd modes, owners, links, a FIFO, xattrs, a sparse file. */
  tree: string;
  /** `tree` after an edit session: changed, removed, added and re-moded entries. */
  treeV2: string;
  /** A pax tarball of `tree` (with user.* xattrs and ns mtimes). */
  tarball: string;
  /** Manifests (treeManifest with xattrs) of tree and treeV2, for checking copies. */
  treeManifest: string;
  treeV2Manifest: string;
}

export interface WorkloadContext {
  fixtures: Fixtures;
  /** A plain scratch directory (HOME for git and the like); never on the mount under test. */
  scratch: string;
}

export interface Workload {
  name: string;
  /**
   * Runs the tool inside `root`, checks what it can on its own, and returns a
   * fingerprint (manifest text with content hashes) that must be identical
   * for the same workload run on a plain directory.
   */
  run(root: string, ctx: WorkloadContext): Promise<string>;
}
