/**
 * What `paciofs repair` does about verify's findings: one plan per path, or
 * the reason it cannot be repaired. Pure: no I/O.
 *
 * Repair restores the state the ledger's records expect (the expected tree
 * verify replayed); it never decides a new state. Findings about the ledger
 * itself mean that expectation cannot be trusted: then nothing is repaired.
 */
import type {ExpectedTree, Inode} from '../audit/expected.js'
import type {Divergence, DivergenceKind} from '../audit/types.js'

/**
 * aside:  move what is there into the quarantine (unexpected, or of the wrong type);
 * create: make the entry anew from the expected state (file bytes, directory, symlink, special file);
 * content: rewrite a file's bytes (temp + rename);
 * target: rewrite a symlink (temp + rename);
 * mode / owner / xattr: fix in place.
 * create, content and target set every attribute on the new entry, so they subsume mode/owner/xattr.
 */
export type Step = 'aside' | 'create' | 'content' | 'target' | 'mode' | 'owner' | 'xattr'

export interface PathPlan {
  path: string
  found: DivergenceKind[]
  steps: Step[]
  /** the expected state; undefined for an entry the records never had */
  exp?: Inode
  /** findings below this path that moving it aside takes care of */
  covered: number
  /** a file: another name of the same recorded inode (a hard link) that is intact, or restored before this one: link to it */
  linkTo?: string
}

export interface Unrepairable {
  path: string
  found: DivergenceKind[]
  reason: string
}

/** A version missing from or altered in the history store: stored again from bytes with its recorded sha256. */
export interface HistoryPlan {
  path: string
  found: DivergenceKind[]
  digest: string
  /** the record that names the version */
  epoch: number
  txid: string
}

export interface Plan {
  plans: PathPlan[]
  /** history store findings, one per path and version (in ledger order) */
  history: HistoryPlan[]
  left: Unrepairable[]
}

/** Findings that put the records themselves in doubt: no expected state to restore. */
const LEDGER_KINDS = new Set<DivergenceKind>(['ledger-broken', 'signature-invalid', 'sequence-gap', 'record-missing', 'checkpoint-inconsistent'])
const HISTORY_KINDS = new Set<DivergenceKind>(['history-missing', 'history-tampered'])

const under = (p: string, dir: string) => p === dir || p.startsWith(dir === '/' ? '/' : dir + '/')

function groupByPath(divergences: Divergence[]): Map<string, DivergenceKind[]> {
  const by = new Map<string, DivergenceKind[]>()
  for (const d of divergences) {
    if (d.kind === 'interrupted') continue // not tampering: there is no recorded content to restore
    // verify --path of a subtree whose root is gone reports it unreadable (ENOENT): it is missing
    const kind = d.kind === 'modified' && d.expected === 'readable' && d.found === 'ENOENT' ? 'missing' : d.kind
    const kinds = by.get(d.path) ?? []
    if (!kinds.includes(kind)) kinds.push(kind)
    by.set(d.path, kinds)
  }

  return by
}

/** `subtree`: verify looked only below it (--path); nothing outside it is known to be intact. */
export function planRepair(divergences: Divergence[], tree: ExpectedTree, subtree = '/'): Plan {
  const by = groupByPath(divergences)
  const paths = [...by.keys()].sort() // a parent before what is below it
  const ledger = divergences.filter(d => LEDGER_KINDS.has(d.kind))
  if (ledger.length > 0) {
    const kinds = [...new Set(ledger.map(d => d.kind))].join(', ')
    return {plans: [], history: [], left: paths.map(path => ({path, found: by.get(path)!,
      reason: `the ledger cannot be trusted (${kinds}): there is no sound record of what should be there`}))}
  }

  const plans: PathPlan[] = []
  const left: Unrepairable[] = []
  const tampered = paths.filter(p => by.get(p)!.includes('record-tampered'))
  const aside: PathPlan[] = []
  for (const path of paths) {
    const found = by.get(path)!
    const kinds = found.filter(k => !HISTORY_KINDS.has(k))
    if (kinds.length === 0) continue
    const t = tampered.find(q => q !== '' && under(path, q))
    if (t !== undefined || kinds.includes('record-tampered')) {
      left.push({path, found: kinds, reason: `the record of ${t ?? path} was tampered with: the ledger no longer says what should be there`})
      continue
    }

    const parent = aside.find(a => under(path, a.path))
    if (parent) {
      parent.covered++ // moved aside with its parent
      continue
    }

    const exp = tree.entries.get(path)
    if (kinds.includes('unexpected') || !exp) {
      const plan = {path, found: kinds, steps: ['aside' as Step], covered: 0}
      plans.push(plan)
      aside.push(plan)
      continue
    }

    const steps: Step[] = []
    if (kinds.includes('type')) steps.push('aside', 'create')
    else if (kinds.includes('missing')) steps.push('create')
    else if (kinds.includes('modified') && exp.type === 'file') steps.push('content')
    else if (kinds.includes('link-target') && exp.type === 'symlink') steps.push('target')
    else {
      for (const k of ['mode', 'owner', 'xattr'] as const) if (kinds.includes(k)) steps.push(k)
    }

    if (steps.length === 0) {
      left.push({path, found: kinds, reason: `no repair for ${kinds.join(', ')} of a ${exp.type}`})
      continue
    }

    if ((steps.includes('create') || steps.includes('content')) && exp.type === 'file' && exp.digest === undefined) {
      left.push({path, found: kinds, reason: 'its content was never recorded (a write cut off by a crash): nothing to restore it to'})
      continue
    }

    const plan: PathPlan = {path, found: kinds, steps, exp, covered: 0}
    plans.push(plan)
    if (steps.includes('aside') && exp.type !== 'dir') aside.push(plan) // what was below a wrong-typed entry went with it
  }

  linkSiblings(plans, tree, p => under(p, subtree) && !by.has(p) && !untrusted(tree, p))
  return {plans, history: planHistory(divergences, tampered, left), left}
}

const HEX64 = /^[0-9a-f]{64}$/

function planHistory(divergences: Divergence[], tampered: string[], left: Unrepairable[]): HistoryPlan[] {
  const out: HistoryPlan[] = []
  for (const d of divergences) {
    if (!HISTORY_KINDS.has(d.kind)) continue
    const t = tampered.find(q => q !== '' && under(d.path, q))
    if (t !== undefined) left.push({path: d.path, found: [d.kind], reason: `the record of ${t} was tampered with: the ledger no longer says which version belongs there`})
    else if (!HEX64.test(d.expected ?? '') || !d.record) left.push({path: d.path, found: [d.kind], reason: 'the finding names no recorded version'})
    else out.push({path: d.path, found: [d.kind], digest: d.expected!, epoch: d.record.epoch, txid: d.record.txid})
  }

  return out
}

/** Hard links: a file to restore whose recorded inode has another name that is fine (or restored first) is linked to it again. */
function untrusted(tree: ExpectedTree, p: string): boolean {
  for (let q = p; q.length > 0; q = q.slice(0, q.lastIndexOf('/'))) if (tree.untrusted.has(q)) return true
  return false
}

function linkSiblings(plans: PathPlan[], tree: ExpectedTree, intact: (p: string) => boolean): void {
  const wanted = new Map<Inode, PathPlan[]>()
  for (const plan of plans) {
    if (plan.exp?.type === 'file' && plan.steps.some(s => s === 'create' || s === 'content')) wanted.set(plan.exp, [...wanted.get(plan.exp) ?? [], plan])
  }

  if (wanted.size === 0) return
  for (const [p, n] of tree.entries) {
    const group = wanted.get(n)
    if (!group || n.interrupted || !intact(p)) continue
    for (const plan of group) plan.linkTo ??= p
  }

  for (const group of wanted.values()) for (const plan of group.slice(1)) plan.linkTo ??= group[0].path
}

/** One line for people: what the plan does. */
export function describe(plan: PathPlan): string {
  const exp = plan.exp
  const what = exp?.type === 'file' ? `file (${exp.size ?? 0} bytes, sha256 ${exp.digest?.slice(0, 16)})`
    : exp?.type === 'symlink' ? `symlink -> ${exp.target}` : exp?.type === 'dir' ? 'directory' : exp?.type
  const parts: string[] = []
  for (const s of plan.steps) {
    switch (s) {
      case 'aside': parts.push(plan.exp ? 'move the wrong-typed entry to the quarantine' : `move to the quarantine${plan.covered ? ` (with ${plan.covered} entries below it)` : ''}`); break
      case 'create': parts.push(`recreate ${what}`); break
      case 'content': parts.push(`restore content: ${what}`); break
      case 'target': parts.push(`restore symlink -> ${exp?.target}`); break
      case 'mode': parts.push(`chmod 0${((exp?.mode ?? 0) & 0o7777).toString(8)}`); break
      case 'owner': parts.push(`chown ${exp?.uid}:${exp?.gid}`); break
      case 'xattr': parts.push('restore xattrs'); break
    }
  }

  return parts.join(', ') + (plan.linkTo ? ` (a hard link to ${plan.linkTo})` : '')
}
