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
}

const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(import.meta.url)
export const sys: Sys = require(path.join(here, '..', '..', 'native', 'build', 'Release', 'paciofs_sys.node')) as Sys

export const XATTR_CREATE = 1
export const XATTR_REPLACE = 2
