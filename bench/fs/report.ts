/**
 * Results as rows (one metric, a value per target) and their rendering as a
 * Markdown table, readable on a terminal and pasteable into bench/README.md.
 */
import type {TargetName} from './targets.js'

export type Goal =
  | {kind: 'vs-bindfs'; min: number} // paciofs / bindfs >= min
  | {kind: 'at-most'; max: number} // paciofs value < max
  | {kind: 'at-least'; min: number} // paciofs value >= min

export interface Row {
  bench: string
  metric: string
  unit: string
  better: 'higher' | 'lower'
  /** The reported value per target: the median of `runs`. */
  values: Partial<Record<TargetName, number>>
  runs?: Partial<Record<TargetName, number[]>>
  goal?: Goal
  note?: string
}

export interface JudgedRow extends Row {
  ratioVsBindfs?: number
  ratioVsDisk?: number
  target?: string
  /** null when not judged (smoke mode, or no value) */
  met?: boolean | null
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** A row whose value per target is the median of its runs. */
export function rowOf(base: Omit<Row, 'values' | 'runs'>, runs: Partial<Record<TargetName, number[]>>): Row {
  const values: Row['values'] = {}
  for (const [t, xs] of Object.entries(runs) as Array<[TargetName, number[]]>) if (xs.length > 0) values[t] = median(xs)
  return {...base, values, runs}
}

function goalText(g: Goal): string {
  switch (g.kind) {
    case 'vs-bindfs': return `>= ${g.min}x bindfs`
    case 'at-most': return `< ${g.max}`
    case 'at-least': return `>= ${g.min}`
  }
}

export function judge(row: Row, judged: boolean): JudgedRow {
  const p = row.values.paciofs
  const ratio = (of?: number) => (p !== undefined && of !== undefined && of > 0 ? p / of : undefined)
  const out: JudgedRow = {...row, ratioVsBindfs: ratio(row.values.bindfs), ratioVsDisk: ratio(row.values.disk)}
  if (!row.goal) return out
  out.target = goalText(row.goal)
  const g = row.goal
  const ok = g.kind === 'vs-bindfs' ? (out.ratioVsBindfs === undefined ? undefined : out.ratioVsBindfs >= g.min)
    : p === undefined ? undefined
      : g.kind === 'at-most' ? p < g.max : p >= g.min
  out.met = judged && ok !== undefined ? ok : null
  return out
}

export function fmt(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return '–'
  const a = Math.abs(x)
  if (a >= 1000) return Math.round(x).toLocaleString('en-US')
  if (a >= 100) return x.toFixed(0)
  if (a >= 10) return x.toFixed(1)
  return x.toFixed(2)
}

const ratio = (x: number | undefined) => (x === undefined ? '–' : `${x.toFixed(2)}x`)

export function markdownTable(rows: JudgedRow[]): string {
  const head = ['benchmark', 'metric', 'disk', 'bindfs', 'paciofs', 'paciofs/bindfs', 'paciofs/disk', 'target', 'met']
  const body = rows.map(r => [
    r.bench,
    `${r.metric}${r.unit ? ` (${r.unit})` : ''}`,
    fmt(r.values.disk), fmt(r.values.bindfs), fmt(r.values.paciofs),
    ratio(r.ratioVsBindfs), ratio(r.ratioVsDisk),
    r.target ?? '',
    r.met === true ? 'yes' : r.met === false ? '**NO**' : r.target ? 'not judged' : '',
  ])
  const widths = head.map((h, i) => Math.max(h.length, ...body.map(b => b[i].length)))
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i >= 2 && i <= 6 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ')} |`
  const rule = `|${widths.map((w, i) => (i >= 2 && i <= 6 ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`
  return [line(head), rule, ...body.map(line)].join('\n')
}
