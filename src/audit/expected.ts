/**
 * The expected tree: records replayed in ledger order. Hard links share one
 * Inode object, so a change through one name is expected at every name.
 * Pure: no I/O.
 */
import type {FsRecord} from '../volume/types.js'
import type {RecordRef} from './types.js'

export interface Inode {
  type: string
  mode?: number
  uid?: number
  gid?: number
  size?: number
  digest?: string // undefined: content unknown (written while open, no digest recorded yet)
  target?: string
  rdev?: number
  xattrs?: Map<string, string> // name -> sha256 hex of the value; absent: none
  interrupted?: RecordRef // a write-begin with no digest after it
  /** ns since the epoch (decimal): the last recorded utimens, else the time of the record that last set the content; not compared, restored by repair */
  mtime?: string
  last: RecordRef
}

function xattrMap(x: Record<string, string>): Map<string, string> | undefined {
  const m = new Map(Object.entries(x))
  return m.size > 0 ? m : undefined
}

/** A record's time (ms) in ns, as mtimes are kept. */
const atNs = (r: FsRecord) => `${r.at}000000`

export class ExpectedTree {
  readonly entries = new Map<string, Inode>()
  /** Paths whose records cannot be trusted: compared no further (their finding is already reported). */
  readonly untrusted = new Set<string>()

  apply(r: FsRecord, ref: RecordRef): void {
    // a repair restores the state the records before it expect and proves it: it never changes the expectation
    if (r.op === 'repair') return
    const e = this.entries
    const node = e.get(r.path)
    if (node) node.last = ref
    switch (r.op) {
      case 'create':
      case 'mknod':
      case 'mkdir':
      case 'symlink':
        e.set(r.path, {type: r.type ?? 'file', mode: r.mode, uid: r.uid, gid: r.gid, size: r.size, digest: r.digest, target: r.target, rdev: r.rdev,
          last: ref, interrupted: r.writing ? ref : undefined, mtime: atNs(r)})
        break
      case 'link':
        if (node && r.to) e.set(r.to, node)
        break
      case 'unlink':
      case 'rmdir':
        e.delete(r.path)
        break
      case 'rename':
        if (r.to) this.rename(r.path, r.to)
        break
      case 'chmod':
        if (node) {
          node.mode = r.mode
          if (r.xattrs) node.xattrs = xattrMap(r.xattrs)
        }

        break
      case 'chown':
        if (node) {
          node.uid = r.uid
          node.gid = r.gid
          if (r.mode !== undefined) node.mode = r.mode
        }

        break
      case 'truncate':
        if (node) {
          node.size = r.size
          node.digest = r.digest
          node.mtime = atNs(r)
        }

        break
      case 'write-begin':
        if (node) node.interrupted = ref
        break
      case 'write':
        if (node) {
          node.size = r.size
          node.digest = r.digest
          node.interrupted = undefined
          node.mtime = atNs(r)
        }

        break
      case 'setxattr':
      case 'removexattr':
        if (!node) break
        if (r.xattrs) node.xattrs = xattrMap(r.xattrs) // the state after: setting an ACL may change or drop the xattr
        else if (r.op === 'setxattr' && r.name) (node.xattrs ??= new Map()).set(r.name, r.value ?? '')
        else if (r.name) node.xattrs?.delete(r.name)
        if (r.mode !== undefined) node.mode = r.mode // ACLs carry permission bits
        break
      case 'utimens':
        // times are recorded for the trail, not compared
        if (node && r.mtime !== undefined && r.mtime !== 'omit') node.mtime = r.mtime === 'now' ? atNs(r) : r.mtime
        break
    }
  }

  private rename(from: string, to: string): void {
    if (from === to) return
    const node = this.entries.get(from)
    const target = this.entries.get(to)
    if (node && node.type !== 'dir' && target?.type !== 'dir') {
      // the common case (editors, rsync, mv of a file): one entry moves
      this.entries.delete(from)
      this.entries.set(to, node)
      if (this.untrusted.delete(from)) this.untrusted.add(to)
      return
    }

    const moved: Array<[string, Inode]> = []
    const prefix = from + '/'
    for (const [p, n] of this.entries) {
      if (p === from || p.startsWith(prefix)) moved.push([p, n])
    }

    // the target (and, for a directory, what was under it) is replaced
    const toPrefix = to + '/'
    for (const p of [...this.entries.keys()]) if (p === to || p.startsWith(toPrefix)) this.entries.delete(p)
    for (const [p] of moved) this.entries.delete(p)
    for (const [p, n] of moved) this.entries.set(to + p.slice(from.length), n)
    for (const p of [...this.untrusted]) {
      if (p === from || p.startsWith(prefix)) {
        this.untrusted.delete(p)
        this.untrusted.add(to + p.slice(from.length))
      }
    }
  }
}
