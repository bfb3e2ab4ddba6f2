/**
 * The Volume API: one interface for a local volume and (later) a remote one.
 * Paths are volume-absolute ('/a/b'), as the kernel hands them to FUSE.
 * Errors are thrown as Node-style errors carrying a `code` such as 'ENOENT';
 * the FUSE adapter maps them to negative errno values at its boundary.
 */
import type {BigIntStats, StatsFs} from 'node:fs'
import type {Passthrough} from './passthrough.js'

/** Who asked for an operation: the calling process as the kernel saw it. */
export interface Caller {
  uid: number
  gid: number
  pid: number
}

/** utimens argument: nanoseconds since the epoch, or one of the two sentinels. */
export type TimeSpec = bigint | 'now' | 'omit'

export interface Volume {
  getattr(path: string): Promise<BigIntStats>
  fgetattr(path: string, fh: number): Promise<BigIntStats>
  access(path: string, mode: number): Promise<void>
  statfs(path: string): Promise<StatsFs>
  readdir(path: string): Promise<string[]>
  readlink(path: string): Promise<string>

  open(path: string, flags: number, caller: Caller): Promise<number>
  create(path: string, mode: number, flags: number, caller: Caller): Promise<number>
  read(path: string, fh: number, buf: Buffer, len: number, pos: number): Promise<number>
  /**
   * Optional: the same read made off the caller's thread (libuv's pool), for
   * large reads whose copy (and disk wait) should not hold the event loop: the
   * data server's 1 MiB reads, while it encrypts and sends the chunk before.
   */
  readOffThread?(path: string, fh: number, buf: Buffer, len: number, pos: number): Promise<number>
  write(path: string, fh: number, buf: Buffer, len: number, pos: number, caller: Caller): Promise<number>
  flush(path: string, fh: number): Promise<void>
  fsync(path: string, fh: number, datasync: boolean): Promise<void>
  release(path: string, fh: number): Promise<void>

  truncate(path: string, size: number, caller: Caller): Promise<void>
  ftruncate(path: string, fh: number, size: number, caller: Caller): Promise<void>
  mknod(path: string, mode: number, rdev: number, caller: Caller): Promise<void>
  mkdir(path: string, mode: number, caller: Caller): Promise<void>
  symlink(target: string, path: string, caller: Caller): Promise<void>
  link(existing: string, path: string, caller: Caller): Promise<void>
  unlink(path: string, caller: Caller): Promise<void>
  rmdir(path: string, caller: Caller): Promise<void>
  rename(from: string, to: string, caller: Caller): Promise<void>
  chmod(path: string, mode: number, caller: Caller): Promise<void>
  chown(path: string, uid: number, gid: number, caller: Caller): Promise<void>
  utimens(path: string, atime: TimeSpec, mtime: TimeSpec, caller: Caller): Promise<void>

  setxattr(path: string, name: string, value: Buffer, flags: number, caller: Caller): Promise<void>
  getxattr(path: string, name: string): Promise<Buffer>
  listxattr(path: string): Promise<string[]>
  removexattr(path: string, name: string, caller: Caller): Promise<void>

  /** Flush pending records and wait until they are committed on the ledger. */
  sync(): Promise<void>
  close(): Promise<void>

  /** Optional: let the FUSE binding serve read/write of open files on its own threads (see passthrough.ts). */
  usePassthrough?(pt: Passthrough, opts?: {writes?: boolean; meta?: boolean}): void
  /**
   * Lets the binding make creates and unlinks on its own threads, logged to the op log
   * (oplog.ts) before it answers; the volume records them afterwards. False if
   * this volume cannot (no op log, no passthrough). `onError`: a record that failed.
   * `releases`: the binding answers releases too (the volume runs them afterwards, in order).
   */
  startFastCreate?(onError: (error: unknown) => void, opts?: {releases?: boolean}): boolean
  /** Ends startFastCreate and records what the binding made meanwhile (before the journal closes). */
  stopFastCreate?(): void
}

export type FileType = 'file' | 'dir' | 'symlink' | 'fifo' | 'chr' | 'blk' | 'sock'

export type RecordOp =
  | 'create' | 'mknod' | 'mkdir' | 'symlink' | 'link'
  | 'unlink' | 'rmdir' | 'rename'
  | 'chmod' | 'chown' | 'utimens'
  | 'truncate' | 'write-begin' | 'write'
  | 'setxattr' | 'removexattr'
  | 'member-add' | 'member-remove' // membership of the volume (path '/'; `member` names who joins or leaves)
  | 'repair' // `paciofs repair` restored the entry to the state the records before it expect (see RepairNote)
  | 'server-join' | 'server-accept' | 'server-kick' | 'server-leave' // replica servers (path '/'; `member` names the server)

/**
 * What a repair record says besides the restored state. Replay ignores
 * repair records: they prove the disk was brought back to what the records
 * before them expect, and never change that expectation.
 */
export interface RepairNote {
  found: string[] // the verify findings repaired at this path ('modified', 'missing', 'unexpected', …)
  source?: 'history' | 'peer' | 'disk' // where restored bytes came from (checked against their recorded sha256)
  peer?: string // host:port of the peer, when bytes came from one
  aside?: string // where an unexpected or wrong-typed entry was moved, relative to the volume's state directory
  of?: {epoch: number; txid: string} // the record that says what should be there
}

/**
 * What happened, in enough detail for the auditor to rebuild the expected
 * tree: the state of the entry after the operation, never the file's bytes.
 * Integers only (canonical encoding rejects floats); times in ms.
 */
export interface FsRecord {
  v: 1
  op: RecordOp
  path: string
  to?: string // rename destination; link: the new name (path is the existing one)
  type?: FileType
  mode?: number // full st_mode (type and permission bits)
  uid?: number
  gid?: number
  rdev?: number
  size?: number
  digest?: string // sha256 hex of the file's content (write, truncate)
  target?: string // symlink target
  name?: string // xattr name
  value?: string // sha256 hex of the xattr value
  xattrs?: Record<string, string> // chmod/setxattr/removexattr: every xattr after the op, name -> sha256 hex
  writing?: boolean // create: opened for writing, its content digest follows (a crash before it: interrupted)
  atime?: string // utimens: ns since epoch as decimal string, or 'now'
  mtime?: string
  member?: string // member-add/member-remove: hex of the member's Ed25519 public key; server-*: the server's key
  repair?: RepairNote // repair: what was found and done; type/mode/uid/gid/size/digest/target/xattrs: the state restored
  address?: string // server-join: where the server serves (host:port)
  fingerprint?: string // server-join: sha256 hex of the server's TLS certificate
  proof?: string // server-join: the server's own signature over its join statement (src/replica/statements.ts)
  signedAt?: number // server-join: the statement's time (ms)
  reason?: string // server-kick: the evidence, as text
  who: {uid: number; gid: number; pid: number; member: string}
  at: number // ms since the epoch
}
