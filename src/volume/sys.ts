/** Typed access to native/ (syscalls Node's fs lacks). See native/sys.c. */
import {createRequire} from 'node:module'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import type {TimeSpec} from './types.js'

interface Sys {
  lutimensNs(path: string, atime: TimeSpec, mtime: TimeSpec): void
  mknod(path: string, mode: number, rdev: number): void
  lsetxattr(path: string, name: string, value: Buffer, flags: number): void
  lgetxattr(path: string, name: string): Buffer
  llistxattr(path: string): string[]
  lremovexattr(path: string, name: string): void
  /** verify's batch of small reads (see native/sys.c): returns the index it reached */
  readFiles(paths: string[], start: number, end: number, flags: number, expect: Float64Array | null, data: Buffer, out: Float64Array): number
  /** SHA-256 on the thread pool (see native/sys.c and src/history/sha256.ts) */
  sha256Job(data: Buffer, flags: number, state: Buffer | null, before: number, out: Buffer): Promise<void>
  /** the same job reading the file `path` into data first: resolves with the bytes read, hashed only if exactly `want` */
  sha256Job(data: Buffer, flags: number, state: Buffer | null, before: number, out: Buffer, path: string, want: number): Promise<number>
  /** the history store's putChunk in one job on the thread pool: hash, and write unless present; with fd >= 0, pwrite to it at pos first (see native/sys.c) */
  storeChunkJob(data: Buffer, dir: string, tag: string, out: Buffer, fd: number, pos: number): Promise<void>
  /** storeChunkJob and the chunk's step of its version's hash in the same job: out[40..72) = the state after it (the digest with last) */
  storeStepJob(data: Buffer, dir: string, tag: string, out: Buffer, fd: number, pos: number, state: Buffer | null, before: number, last: boolean): Promise<void>
  /**
   * reads bytes [pos, pos+len) of the file `path` back on the thread pool and takes their chain step of a
   * running SHA-256 (from state after `before` bytes; out[0..32) = the state after it), read into buf: resolves with the bytes read
   */
  hashFileJob(path: string, pos: number, len: number, state: Buffer | null, before: number, out: Buffer, buf: Buffer): Promise<number>
  /** syncfs(2) of the file system holding `path` on the thread pool: all its dirty data and inodes, one device cache flush */
  syncfsJob(path: string): Promise<void>
  /** sync_file_range(2) SYNC_FILE_RANGE_WRITE on the thread pool: the disk starts writing the range (nothing waited for, no error taken from the file) */
  syncRangeJob(fd: number, offset: number, length: number): Promise<void>
  /** execv(2): replaces the process (same pid); returns only by throwing (see src/app/relaunch.ts) */
  execv(file: string, argv: string[]): never
  /** glibc's mallopt(M_ARENA_MAX, n) for arenas made from now on; false if refused */
  limitMallocArenas(n: number): boolean
  /** glibc's malloc_trim(0) on the thread pool: true if memory went back to the kernel */
  trimMallocJob(): Promise<boolean>
  /** glibc's mallopt M_MMAP_THRESHOLD, M_TRIM_THRESHOLD and M_TOP_PAD (bytes); false if one is refused */
  tuneMalloc(mmapThreshold: number, trimThreshold: number, topPad: number): boolean
}

/** readFiles flag: lstat and llistxattr each path, read regular files only (their st_size + 1 bytes) */
export const READ_LSTAT = 1
/** numbers per path in readFiles' `out` */
export const READ_META = 9

const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(import.meta.url)
export const sys: Sys = require(path.join(here, '..', '..', 'native', 'build', 'Release', 'paciofs_sys.node')) as Sys

export const XATTR_CREATE = 1
export const XATTR_REPLACE = 2
