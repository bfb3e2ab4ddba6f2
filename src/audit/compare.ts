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

export function compareTrees(tree: ExpectedTree, actual: Map<string, ActualEntry>, within: (p: string) => boolean): {divergences: Divergence[]; files: number; bytes: number} {
  const out: Divergence[] = []
  let files = 0
  let bytes = 0
  const isUntrusted = (p: string) => {
    for (let q = p; q.length > 0; q = q.slice(0, q.lastIndexOf('/'))) if (tree.untrusted.has(q)) return true
    return false
  }

  for (const [path, exp] of tree.entries) {
    if (path === '/' || !within(path) || isUntrusted(path)) continue
    const act = actual.get(path)
    if (!act) {
      out.push({path, kind: 'missing', expected: exp.type, found: 'absent', record: exp.last})
      continue
    }

    compareEntry(path, exp, act, out)
  }

  for (const [path, act] of actual) {
    if (act.type === 'file') {
      files++
      bytes += act.size
    }

    if (path === '/' || tree.entries.has(path) || !within(path) || isUntrusted(path)) continue
    out.push({path, kind: 'unexpected', expected: 'absent', found: act.type, detail: 'on disk but never recorded: added outside PacioFS'})
  }

  out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  return {divergences: out, files, bytes}
}
