/**
 * Kernel paths -> backing paths. Every path the FUSE layer hands over is
 * checked here: absolute, no NUL, no '.' or '..' components, and never inside
 * the state directory. Anything else is refused before touching the disk.
 */
import path from 'node:path'
import {STATE_DIR} from './layout.js'

export class PathError extends Error {
  constructor(readonly code: 'ENOENT' | 'EACCES' | 'EINVAL' | 'ENAMETOOLONG', message: string) {
    super(message)
  }
}

const MAX_NAME = 255
const MAX_PATH = 4096

/** Validates a volume path and returns it in normal form ('/a/b'). */
export function normalize(p: string): string {
  if (typeof p !== 'string' || p.length === 0 || p[0] !== '/') throw new PathError('EINVAL', `not an absolute volume path: ${JSON.stringify(p)}`)
  if (p.includes('\0')) throw new PathError('EINVAL', 'path contains NUL')
  if (Buffer.byteLength(p) > MAX_PATH) throw new PathError('ENAMETOOLONG', 'path too long')
  if (p === '/') return '/'
  const parts = p.split('/').filter(part => part.length > 0)
  for (const part of parts) {
    if (part === '.' || part === '..') throw new PathError('EINVAL', `path component ${part} not allowed`)
    if (Buffer.byteLength(part) > MAX_NAME) throw new PathError('ENAMETOOLONG', 'name too long')
  }

  return '/' + parts.join('/')
}

/** True for the state directory and everything below it. */
export function isStatePath(volPath: string): boolean {
  return volPath === `/${STATE_DIR}` || volPath.startsWith(`/${STATE_DIR}/`)
}

export class PathResolver {
  constructor(readonly root: string) {}

  /** Backing path for a volume path; the state directory does not exist as far as callers know. */
  resolve(p: string): string {
    const norm = normalize(p)
    if (isStatePath(norm)) throw new PathError('ENOENT', 'no such file or directory')
    return norm === '/' ? this.root : path.join(this.root, norm)
  }

  /** For operations that would create `p`: the state directory's name is reserved. */
  resolveNew(p: string): string {
    const norm = normalize(p)
    if (isStatePath(norm)) throw new PathError('EACCES', `${STATE_DIR} is reserved`)
    return path.join(this.root, norm)
  }
}
