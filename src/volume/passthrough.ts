/**
 * The port through which a FUSE binding serves read and write of open files
 * on its own threads, without a round trip to the event loop per request
 * (implemented by the patched fuse-native: patches/, passthrough.h).
 *
 * The volume attaches each handle's backing fd; reads are then served by the
 * binding. Writes are served there only while the volume holds the handle's
 * gate open, which it does only when a write changes nothing it must record
 * (the file is already dirty, it is the inode's only writer, no capture of
 * the inode runs). Otherwise writes come to the volume as before, which writes
 * through `write` so that the binding counts (`gen`) and hashes every write of
 * the handle. `settle` closes the gate only if no write happened since a given
 * generation: a digest and "clean" are then true at one instant.
 */
export interface Passthrough {
  /** Attach flag: the file starts empty; keep a running SHA-256 of sequential writes. */
  readonly PT_HASH: number
  /** Attach flag: the fd is O_APPEND (writes land at the end, not at their offset). */
  readonly PT_APPEND: number
  attach(fh: number, fd: number, flags: number): void
  /** Opens or closes the gate; returns the handle's generation. */
  gate(fh: number, open: boolean): number
  gen(fh: number): number
  /** Closes the gate and returns true if the generation is still `gen`. */
  settle(fh: number, gen: number): boolean
  /** A write made by the volume (gate closed): pwrite, counted and hashed. */
  write(fh: number, buf: Buffer, len: number, pos: number): number
  /** The running digest can no longer follow the bytes (truncate, a second writer). */
  invalidate(fh: number): void
  /** File size (fstat) and, if it covers exactly that size, the running digest, at one instant. */
  state(fh: number): {gen: number; size: number; digest: string | null; fastReads: number; fastWrites: number}
  /**
   * Hashes, on the thread pool, what the binding's hasher (which runs at idle
   * priority and may fall behind) has left of the bytes written so far, so
   * that `state` finds (almost) nothing left to hash on the event loop.
   * Resolves once done; null (no trip through the pool, which would put the
   * digest's record behind the operations after it) when less than 1 MiB is left.
   */
  catchUp(fh: number): Promise<void> | null
  /** Detaches fh (waiting for the binding's threads to leave it); returns its final generation, null if not attached. */
  detach(fh: number): number | null
  /**
   * Backing directory for the one getxattr the kernel makes before every
   * write(2) (security.capability), answered by the binding with lgetxattr on
   * the backing path instead of a trip to the volume; null stops it.
   */
  xattrRoot(root: string | null): void
  /** A volume path (and everything below it) whose xattrs the binding leaves to the volume. */
  xattrSkip(prefix: string): void
  /** meta flag: getattr, access and readlink (lstat/access/readlink of the backing path), fgetattr (fstat of an attached fd). */
  readonly META_ATTR: number
  /** meta flag: flush answers 0 (for a volume whose flush does nothing). */
  readonly META_FLUSH: number
  /**
   * Read-only metadata ops the binding answers on its own threads, from the
   * xattrRoot backing directory and never below the xattrSkip prefixes or for
   * paths with '.'/'..' components (those still come to the volume); 0: none.
   * These ops change nothing, so there is nothing to record for them.
   */
  meta(flags: number): void
  /** Op of an item of createStart: a create (fd: the new handle). */
  readonly OP_CREATE: number
  /** Op of an item of createStart: an unlink (fd: -1). */
  readonly OP_UNLINK: number
  /** Op of an item of createStart: a release the binding answered (fd: the fh), busy until the volume ends it with createBusy(-1). */
  readonly OP_RELEASE: number
  /**
   * Creates of new files for writing (not O_APPEND) and unlinks on plain
   * volume paths are made by the binding from now on (unlinks only while no
   * op handed to the volume runs and no digest is being taken: createBusy):
   * it appends an entry to the op log `fd` (numbered from `seq`, from offset
   * 0; oplog.ts) before it changes the disk, attaches a created handle (gate
   * open, running digest), answers, and hands them to `cb` in order before any
   * later op reaches the volume, as flat arrays of 11 values per item:
   * [op, seq, path, fd, flags, owner uid, owner gid, caller uid, caller gid, caller pid, at].
   * At most 256 entries wait for createConsumed; beyond, creates and unlinks
   * go to the volume (which answers after journaling).
   * `releases`: releases are answered by the binding too and handed over the
   * same way (at most 256 at a time; beyond, a release waits for the volume).
   */
  createStart(fd: number, seq: number, cb: (items: Array<number | string>) => void, releases: boolean): void
  /** Ends createStart; returns the items not yet handed to its callback. */
  createStop(): Array<number | string>
  /** Every op log entry up to `seq` is journaled (the binding may start the log again). */
  createConsumed(seq: number): void
  /** Creates and unlinks made by the binding since it was loaded. */
  createTotal(): {creates: number; unlinks: number}
  /** The volume began (+1) or ended (-1) taking a digest: meanwhile unlinks come to the volume. */
  createBusy(delta: number): void
}
