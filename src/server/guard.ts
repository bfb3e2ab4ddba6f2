/**
 * Path safety for requests from the network. The kernel of a FUSE client
 * resolves symlinks itself and never sends a path through one; a hostile
 * client can. So before an operation touches the backing directory:
 *
 * - the path must be a volume path in normal form (absolute, no NUL, no '.'
 *   or '..' components: src/volume/paths.ts);
 * - every directory on the way must be a real directory, not a symlink
 *   (ELOOP), so nothing resolves outside the volume root;
 * - for the few operations whose syscall follows a final symlink (access,
 *   chmod, readdir, statfs) the entry itself must not be a symlink (ELOOP).
 *
 * The check and the operation must see the same tree: the operations that
 * can put a symlink where a directory was (symlink, rename, link) take the
 * volume's namespace lock exclusively, every other path operation shares it.
 */
import fs from 'node:fs'
import {normalize, PathError} from '../volume/paths.js'
import {errnoError} from '../remote/wire.js'

const HISTORY_ROOT = '/.paciofs-history'

export class PathGuard {
  private readers = 0
  private writer = false
  private waiting: Array<{exclusive: boolean; go: () => void}> = []

  constructor(private readonly root: string) {}

  /** Checks a request path; returns it normalized. Throws errno-style errors. */
  check(p: unknown, opts: {final?: 'nofollow'} = {}): string {
    if (typeof p !== 'string') throw errnoError('EINVAL', 'path must be a string')
    let norm: string
    try {
      norm = normalize(p)
    } catch (error) {
      if (error instanceof PathError) throw errnoError(error.code, error.message)
      throw error
    }

    if (norm === HISTORY_ROOT || norm.startsWith(HISTORY_ROOT + '/')) return norm // virtual, read-only, never on disk
    const parts = norm.split('/').filter(Boolean)
    let at = this.root
    const last = opts.final === 'nofollow' ? parts.length : parts.length - 1
    for (let i = 0; i < last; i++) {
      at += '/' + parts[i]
      let st: fs.Stats
      try {
        st = fs.lstatSync(at)
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? 'EIO'
        if (i === parts.length - 1 && code === 'ENOENT') break // the final entry may not exist (yet)
        throw errnoError(code, `${norm}: ${code}`)
      }

      if (st.isSymbolicLink()) throw errnoError('ELOOP', `${norm}: a symlink on the way (the client resolves symlinks)`)
      if (i < parts.length - 1 && !st.isDirectory()) throw errnoError('ENOTDIR', `${norm}: not a directory on the way`)
    }

    return norm
  }

  /** Runs a path operation; `exclusive` for those that can turn a directory into a symlink. */
  async run<T>(exclusive: boolean, work: () => Promise<T>): Promise<T> {
    await this.acquire(exclusive)
    try {
      return await work()
    } finally {
      this.release(exclusive)
    }
  }

  private acquire(exclusive: boolean): Promise<void> {
    const free = exclusive ? !this.writer && this.readers === 0 && this.waiting.length === 0 : !this.writer && this.waiting.length === 0
    if (free) {
      if (exclusive) this.writer = true
      else this.readers++
      return Promise.resolve()
    }

    return new Promise(resolve => this.waiting.push({exclusive, go: resolve}))
  }

  private release(exclusive: boolean): void {
    if (exclusive) this.writer = false
    else this.readers--
    while (this.waiting.length > 0) {
      const next = this.waiting[0]
      if (next.exclusive) {
        if (this.readers > 0 || this.writer) return
        this.waiting.shift()
        this.writer = true
        next.go()
        return
      }

      if (this.writer) return
      this.waiting.shift()
      this.readers++
      next.go()
    }
  }
}
