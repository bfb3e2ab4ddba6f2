/**
 * Carries out one PathPlan on the backing directory. New entries are built
 * under the state directory (invisible to the mount and to verify), given
 * every attribute, made durable (fsync) and then renamed into place: a crash
 * leaves either the old entry or the restored one, never half of it.
 * Nothing is deleted: an unexpected or wrong-typed entry is moved into
 * STATE/quarantine/STAMP/<its volume path>.
 */
import {randomBytes} from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import type {Inode} from '../audit/expected.js'
import {sha256Hex} from '../crypto/hash.js'
import {sys} from '../volume/sys.js'
import {Healer, type HealResult} from '../history/heal.js'
import type {HistoryStore} from '../history/store.js'
import type {HistoryPlan, PathPlan} from './plan.js'
import type {SourceName, Sources} from './sources.js'

export interface Restored {
  source?: SourceName
  /** where the old entry went, relative to the state directory */
  aside?: string
  bytes: number
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r')
  try {
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

export class Restorer {
  private readonly tmpDir: string
  private readonly quarantine: string
  /** directories made here: their attributes are set last (deepest first), after what goes into them */
  private readonly dirs: Array<{backing: string; path: string; exp: Inode}> = []

  constructor(private readonly root: string, private readonly state: string, private readonly sources: Sources, stamp: string) {
    this.tmpDir = path.join(state, 'repair-tmp')
    this.quarantine = path.join(state, 'quarantine', stamp)
  }

  private backing(p: string): string {
    return path.join(this.root, p)
  }

  private tmp(): string {
    fs.mkdirSync(this.tmpDir, {recursive: true, mode: 0o700})
    return path.join(this.tmpDir, randomBytes(8).toString('hex'))
  }

  /** paths whose restore failed in this run: never a target to link to */
  private readonly failed = new Set<string>()

  async run(plan: PathPlan): Promise<Restored> {
    try {
      return await this.steps(plan)
    } catch (error) {
      this.failed.add(plan.path)
      throw error
    }
  }

  private async steps(plan: PathPlan): Promise<Restored> {
    const out: Restored = {bytes: 0}
    const file = this.backing(plan.path)
    const exp = plan.exp
    const local: string[] = [file] // where an xattr value may still be found
    for (const step of plan.steps) {
      switch (step) {
        case 'aside': {
          out.aside = this.moveAside(plan.path)
          local.push(path.join(this.state, out.aside))
          break
        }

        case 'create':
        case 'content':
          if (plan.linkTo && this.relink(plan.path, plan.linkTo)) {
            out.source = 'disk'
            break
          }

          Object.assign(out, await this.recreate(plan.path, exp!, local))
          break
        case 'target':
          Object.assign(out, await this.recreate(plan.path, exp!, local))
          break
        case 'owner':
          fs.lchownSync(file, exp!.uid ?? -1, exp!.gid ?? -1)
          if (exp!.type !== 'symlink' && exp!.mode !== undefined) fs.chmodSync(file, exp!.mode & 0o7777) // chown may drop set-id bits
          break
        case 'mode':
          fs.chmodSync(file, exp!.mode! & 0o7777)
          break
        case 'xattr':
          out.source ??= (await this.xattrs(plan.path, file, exp!, local)) // source of the last value restored, if any
          break
      }
    }

    return out
  }

  /** Makes `p` a hard link to `to` again (tmp + rename); false if that cannot be done (then the bytes are restored instead). */
  private relink(p: string, to: string): boolean {
    if (this.failed.has(to)) return false
    const tmp = this.tmp()
    try {
      fs.linkSync(this.backing(to), tmp)
      fs.renameSync(tmp, this.backing(p))
    } catch {
      fs.rmSync(tmp, {force: true})
      return false
    }

    fsyncDir(path.dirname(this.backing(p)))
    return true
  }

  /** Moves what is at `p` into the quarantine; returns where, relative to the state directory. */
  private moveAside(p: string): string {
    const dest = path.join(this.quarantine, p)
    fs.mkdirSync(path.dirname(dest), {recursive: true, mode: 0o700})
    fs.renameSync(this.backing(p), dest)
    fsyncDir(path.dirname(this.backing(p)))
    return path.relative(this.state, dest)
  }

  private async recreate(p: string, exp: Inode, local: string[]): Promise<Omit<Restored, 'aside'>> {
    const file = this.backing(p)
    if (exp.type === 'dir') {
      fs.mkdirSync(file, {mode: 0o700})
      this.dirs.push({backing: file, path: p, exp})
      return {bytes: 0}
    }

    const tmp = this.tmp()
    let got: Omit<Restored, 'aside'> = {bytes: 0}
    try {
      if (exp.type === 'file') {
        const fd = fs.openSync(tmp, 'wx+', 0o600) // readable too: bytes from a peer are also kept in the history store
        try {
          got = await this.sources.content(p, exp.digest!, fd)
          fs.fsyncSync(fd)
        } finally {
          fs.closeSync(fd)
        }
      } else if (exp.type === 'symlink') {
        fs.symlinkSync(exp.target ?? '', tmp)
      } else {
        sys.mknod(tmp, exp.mode ?? 0, exp.rdev ?? 0)
      }

      const xattrSource = await this.attributes(p, tmp, exp, local)
      got.source ??= xattrSource
      fs.renameSync(tmp, file)
    } catch (error) {
      fs.rmSync(tmp, {force: true})
      throw error
    }

    fsyncDir(path.dirname(file))
    return got
  }

  /** Owner, mode, xattrs and modification time of the expected state. */
  private async attributes(p: string, file: string, exp: Inode, local: string[]): Promise<SourceName | undefined> {
    if (exp.uid !== undefined || exp.gid !== undefined) fs.lchownSync(file, exp.uid ?? -1, exp.gid ?? -1)
    if (exp.type !== 'symlink' && exp.mode !== undefined) fs.chmodSync(file, exp.mode & 0o7777)
    const source = await this.xattrs(p, file, exp, local)
    if (exp.mtime !== undefined) sys.lutimensNs(file, 'omit', BigInt(exp.mtime))
    return source
  }

  /** Makes the entry's xattrs the expected ones: extra names removed, missing or changed values restored from a source. */
  private async xattrs(p: string, file: string, exp: Inode, local: string[]): Promise<SourceName | undefined> {
    const want = exp.xattrs ?? new Map<string, string>()
    let source: SourceName | undefined
    for (const name of sys.llistxattr(file)) if (!want.has(name)) sys.lremovexattr(file, name)
    for (const [name, hash] of want) {
      let have: string | undefined
      try {
        have = sha256Hex(sys.lgetxattr(file, name))
      } catch { /* absent */ }

      if (have === hash) continue
      const got = await this.sources.xattr(p, name, hash, local)
      sys.lsetxattr(file, name, got.value, 0)
      if (got.source !== 'disk') source = got.source
    }

    return source
  }

  /**
   * Stores a version the history store lacks or has altered again, from bytes
   * with its recorded sha256 (see Sources.version); damaged files of the store
   * go to the quarantine. `also`: other volume paths whose records name it.
   */
  async heal(store: HistoryStore, plan: HistoryPlan, also: string[]): Promise<Restored & {healed: HealResult}> {
    const tmp = this.tmp()
    const local = [plan.path, ...also].map(p => this.backing(p))
    const fd = fs.openSync(tmp, 'wx+', 0o600)
    try {
      const got = await this.sources.version(plan.path, plan.epoch, plan.digest, fd, local)
      const healer = new Healer(store, path.join(this.quarantine, 'history'))
      const healed = healer.heal(fd, plan.digest)
      const aside = healed.aside.length > 0 ? path.relative(this.state, path.join(this.quarantine, 'history')) : undefined
      return {source: got.source, bytes: got.bytes, aside, healed}
    } finally {
      fs.closeSync(fd)
      fs.rmSync(tmp, {force: true})
    }
  }

  /** Attributes of the directories made, deepest first (what was created in them changed their times). */
  async finish(onError: (path: string, error: unknown) => void): Promise<void> {
    for (const d of this.dirs.reverse()) {
      try {
        await this.attributes(d.path, d.backing, d.exp, [])
        fsyncDir(d.backing)
      } catch (error) {
        onError(d.path, error)
      }
    }

    this.dirs.length = 0
    fs.rmSync(this.tmpDir, {recursive: true, force: true})
  }
}
