/** Expected tree vs actual tree: one Divergence per difference, with the record that set the expectation. */
import type {ExpectedTree, Inode} from './expected.js'
import type {ActualEntry} from './scan.js'
import type {Divergence} from './types.js'

const perms = (mode: number | undefined) => (mode === undefined ? undefined : mode & 0o7777)
const oct = (mode: number | undefined) => (mode === undefined ? '?' : '0' + (mode & 0o7777).toString(8))
const short = (s: string | undefined) => (s ? s.slice(0, 16) : '(none)')

const NONE: ReadonlyMap<string, string> = new Map()

function xattrDiff(exp: ReadonlyMap<string, string> = NONE, act: ReadonlyMap<string, string> = NONE): string[] {
  if (exp.size === 0 && act.size === 0) return []
  const names = new Set([...exp.keys(), ...act.keys()])
  return [...names].filter(n => exp.get(n) !== act.get(n)).sort()
}

function compareEntry(path: string, exp: Inode, act: ActualEntry, out: Divergence[]): void {
  const record = exp.last
  const add = (kind: Divergence['kind'], expected?: string, found?: string, detail?: string) => out.push({path, kind, expected, found, record, detail})
  if (act.error) {
    add('modified', 'readable', act.error, `cannot read: ${act.error}`)
    return
  }

  if (exp.type !== act.type) {
    add('type', exp.type, act.type)
    return
  }

  if (exp.type !== 'symlink' && exp.mode !== undefined && perms(exp.mode) !== perms(act.mode)) add('mode', oct(exp.mode), oct(act.mode))
  if ((exp.uid !== undefined && exp.uid !== act.uid) || (exp.gid !== undefined && exp.gid !== act.gid)) {
    add('owner', `${exp.uid}:${exp.gid}`, `${act.uid}:${act.gid}`)
  }

  if (exp.type === 'symlink' && exp.target !== act.target) add('link-target', exp.target, act.target)
  if (exp.type === 'file') {
    if (exp.interrupted) {
      out.push({path, kind: 'interrupted', record: exp.interrupted, detail: 'a write was in flight when the mount stopped; its content was never recorded'})
    } else if (exp.digest !== undefined && (exp.digest !== act.digest || exp.size !== act.size)) {
      add('modified', `${short(exp.digest)} (${exp.size} bytes)`, `${short(act.digest)} (${act.size} bytes)`)
    }
  }

  const x = xattrDiff(exp.xattrs, act.xattrs)
  if (x.length > 0) add('xattr', x.map(n => `${n}=${short(exp.xattrs?.get(n))}`).join(', '), x.map(n => `${n}=${short(act.xattrs?.get(n))}`).join(', '))
}

/**
 * Compares entries as the scan delivers them (none is kept once compared),
 * then reports what the tree expects but the scan never saw.
 */
export class TreeComparer {
  readonly divergences: Divergence[] = []
  files = 0
  bytes = 0
  entries = 0
  private readonly seen = new Set<string>()

  constructor(private readonly tree: ExpectedTree, private readonly within: (p: string) => boolean) {}

  private isUntrusted(p: string): boolean {
    if (this.tree.untrusted.size === 0) return false
    for (let q = p; q.length > 0; q = q.slice(0, q.lastIndexOf('/'))) if (this.tree.untrusted.has(q)) return true
    return false
  }

  actual(path: string, act: ActualEntry): void {
    this.entries++
    if (act.type === 'file') {
      this.files++
      this.bytes += act.size
    }

    if (path === '/' || !this.within(path) || this.isUntrusted(path)) return
    const exp = this.tree.entries.get(path)
    if (!exp) {
      this.divergences.push({path, kind: 'unexpected', expected: 'absent', found: act.type, detail: 'on disk but never recorded: added outside PacioFS'})
      return
    }

    this.seen.add(path)
    compareEntry(path, exp, act, this.divergences)
  }

  /** The findings, sorted by path, once every scanned entry went through actual(). */
  finish(): Divergence[] {
    const out = this.divergences
    for (const [path, exp] of this.tree.entries) {
      if (path === '/' || this.seen.has(path) || !this.within(path) || this.isUntrusted(path)) continue
      out.push({path, kind: 'missing', expected: exp.type, found: 'absent', record: exp.last})
    }

    this.seen.clear()
    out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
    return out
  }
}
