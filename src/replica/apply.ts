/**
 * Applies one record, already checked against its salted hash, to a
 * replica's backing directory: the state the record says the entry has
 * after the operation (type, mode, owner, content digest, link target,
 * xattrs). Every step is idempotent, because after a crash the record that
 * was being applied is applied again (records before it are in the journal
 * and are skipped). Content and xattr values come from a ContentSource,
 * which checks them against their digests.
 */
import fs from 'node:fs'
import {constants as C} from 'node:fs'
import {createHash} from 'node:crypto'
import {PathResolver} from '../volume/paths.js'
import {sys} from '../volume/sys.js'
import type {FsRecord} from '../volume/types.js'

export interface ContentSource {
  /** Writes the version with this digest into the file at backing path `file` (in place if it exists; created if absent). */
  install(file: string, digest: string, size: number): Promise<void>
  /** The xattr value whose sha256 is `digest` (named `name` at `volPath`), or undefined if no peer has it any more. */
  xattrValue(volPath: string, name: string, digest: string): Promise<Buffer | undefined>
}

export interface ApplyOutcome {
  /** xattr values no peer could give (a later record usually sets them again) */
  deferred: number
}

const ignore = (codes: string[], fn: () => void) => {
  try {
    fn()
  } catch (error) {
    if (!codes.includes((error as NodeJS.ErrnoException).code ?? '')) throw error
  }
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

function lstat(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

export class RecordApplier {
  private readonly paths: PathResolver

  constructor(readonly root: string, private readonly content: ContentSource) {
    this.paths = new PathResolver(root)
  }

  async apply(r: FsRecord): Promise<ApplyOutcome> {
    const out = {deferred: 0}
    if (r.path === undefined || r.op.startsWith('member-') || r.op.startsWith('server-')) return out
    const p = this.paths.resolve(r.path)
    switch (r.op) {
      case 'create':
        // with content, install creates the file (a staged version is renamed into place)
        if (r.digest !== undefined && r.size !== undefined) await this.content.install(p, r.digest, r.size)
        else if (!lstat(p)) fs.closeSync(fs.openSync(p, C.O_CREAT | C.O_WRONLY | C.O_NOFOLLOW, 0o600))
        this.owner(p, r)
        break
      case 'mknod':
        if (!lstat(p)) sys.mknod(p, r.mode ?? (C.S_IFIFO | 0o600), r.rdev ?? 0)
        this.owner(p, r)
        break
      case 'mkdir':
        ignore(['EEXIST'], () => fs.mkdirSync(p, {mode: 0o700}))
        this.owner(p, r)
        break
      case 'symlink':
        if (!lstat(p) && r.target !== undefined) fs.symlinkSync(r.target, p)
        this.owner(p, r)
        break
      case 'link':
        if (r.to) ignore(['EEXIST'], () => fs.linkSync(p, this.paths.resolve(r.to!)))
        break
      case 'unlink':
        ignore(['ENOENT'], () => fs.unlinkSync(p))
        break
      case 'rmdir':
        ignore(['ENOENT'], () => fs.rmdirSync(p))
        break
      case 'rename':
        if (r.to && lstat(p)) fs.renameSync(p, this.paths.resolve(r.to)) // source gone: applied before a crash
        break
      case 'chmod':
        if (r.mode !== undefined && !lstat(p)?.isSymbolicLink()) fs.chmodSync(p, r.mode & 0o7777)
        if (r.xattrs) out.deferred += await this.xattrs(p, r.path, r.xattrs)
        break
      case 'chown':
        fs.lchownSync(p, r.uid ?? -1, r.gid ?? -1)
        if (r.mode !== undefined && !lstat(p)?.isSymbolicLink()) fs.chmodSync(p, r.mode & 0o7777)
        break
      case 'truncate':
      case 'write':
        if (r.digest !== undefined && r.size !== undefined) await this.content.install(p, r.digest, r.size)
        else if (r.op === 'truncate' && r.size !== undefined) fs.truncateSync(p, r.size)
        break
      case 'setxattr':
      case 'removexattr':
        if (r.xattrs) {
          out.deferred += await this.xattrs(p, r.path, r.xattrs)
        } else if (r.name && r.op === 'removexattr') {
          ignore(['ENODATA', 'ENOATTR'], () => sys.lremovexattr(p, r.name!))
        } else if (r.name) {
          out.deferred += await this.setOne(p, r.path, r.name, r.value ?? sha(Buffer.alloc(0)))
        }

        if (r.mode !== undefined) fs.chmodSync(p, r.mode & 0o7777)
        break
      case 'utimens': {
        const t = (v: string | undefined) => (v === undefined ? 'omit' as const : v === 'now' ? 'now' as const : BigInt(v))
        ignore(['ENOENT'], () => sys.lutimensNs(p, t(r.atime), t(r.mtime)))
        break
      }

      case 'write-begin':
        break
    }

    return out
  }

  /** Mode and owner of a new entry, as recorded. */
  private owner(p: string, r: FsRecord): void {
    if (r.uid !== undefined || r.gid !== undefined) fs.lchownSync(p, r.uid ?? -1, r.gid ?? -1)
    if (r.mode !== undefined && r.type !== 'symlink') fs.chmodSync(p, r.mode & 0o7777)
  }

  /** Makes the entry's xattrs the recorded set: names -> sha256 of the value. */
  private async xattrs(p: string, volPath: string, want: Record<string, string>): Promise<number> {
    let deferred = 0
    for (const name of sys.llistxattr(p)) if (!(name in want)) ignore(['ENODATA', 'ENOATTR'], () => sys.lremovexattr(p, name))
    for (const [name, digest] of Object.entries(want)) deferred += await this.setOne(p, volPath, name, digest)
    return deferred
  }

  private async setOne(p: string, volPath: string, name: string, digest: string): Promise<number> {
    let have: Buffer | undefined
    try {
      have = sys.lgetxattr(p, name)
    } catch { /* not set */ }
    if (have && sha(have) === digest) return 0
    const value = await this.content.xattrValue(volPath, name, digest)
    if (!value) return 1
    sys.lsetxattr(p, name, value, 0)
    return 0
  }
}
