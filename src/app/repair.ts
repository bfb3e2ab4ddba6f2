/**
 * `paciofs repair`: verify, then bring every repairable finding back to the
 * state the ledger's records expect, and record each repair on the ledger.
 *
 * A repair record (op 'repair') names the findings, the state restored and
 * where bytes came from; replay ignores it (src/audit/expected.ts). So a
 * repair never changes what verify expects: the verify repair runs at the end
 * (and every later one) judges the disk against the original records, and a
 * wrong or malicious repair stays visible. The repair record is the trail of
 * who restored what, when, from where.
 */
import fs from 'node:fs'
import {verifyVolume} from '../audit/verify.js'
import type {ExpectedTree} from '../audit/expected.js'
import type {Divergence, DivergenceKind} from '../audit/types.js'
import {PacioError} from '../errors.js'
import {HistoryStore} from '../history/store.js'
import {describe, planRepair, type HistoryPlan, type PathPlan, type Unrepairable} from '../repair/plan.js'
import {Restorer} from '../repair/restore.js'
import {Sources, type Peer, type SourceName} from '../repair/sources.js'
import {RemoteVolume} from '../remote/remote-volume.js'
import {layoutOf, lockHolder, readMeta} from '../volume/layout.js'
import {normalize} from '../volume/paths.js'
import type {FsRecord, RepairNote} from '../volume/types.js'
import {openVolumeLedger} from './ledger.js'
import {connectRemote} from './remote-mount.js'
import {openVolumeStack} from './stack.js'

export interface RepairRequest {
  volume: string
  /** a peer serving a healthy replica: host:port and the volume's name there */
  from?: string
  peerVolume?: string
  identity?: string
  trustNewServerKey?: boolean
  path?: string
  dryRun?: boolean
  /** verify everything, not only what changed since the last verify (old versions in the history store are checked by a full verify) */
  full?: boolean
  cacheDir?: string
  onPhase?: (phase: string) => void
}

export interface RepairItem {
  path: string
  found: DivergenceKind[]
  /** what is (or, with --dry-run, would be) done */
  action: string
  done: boolean
  source?: SourceName
  aside?: string
  bytes?: number
  /** why it was not repaired */
  reason?: string
}

export interface RepairReport {
  volume: string
  volumeId: string
  dryRun: boolean
  /** findings verify reported before the repair */
  findings: number
  items: RepairItem[]
  /** what verify reports after the repair (not with --dry-run) */
  after?: {status: 'clean' | 'divergent'; divergences: Divergence[]}
  /**
   * clean: nothing to repair; repaired: all repaired and verify is clean now; unrepaired: something is left (see items and after).
   * With --dry-run: what would be (repaired: every finding has a repair and a likely source).
   */
  status: 'clean' | 'repaired' | 'unrepaired'
  bytes: number
  ms: number
  /** ms spent in each phase: verify, restore (bytes and attributes), record (committed on the ledger), verify again */
  phases?: Record<string, number>
}

const me = () => ({uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, pid: process.pid})

function checkRequest(req: RepairRequest): void {
  if ((req.from === undefined) !== (req.peerVolume === undefined)) {
    throw new PacioError('EINPUT', '--from and --peer-volume go together: the peer\'s address and the name of the volume it serves',
      {suggestion: 'e.g. --from 10.0.0.5:8765 --peer-volume archive'})
  }

  if (req.from !== undefined && !/^[^\s:]+:\d{1,5}$/.test(req.from)) {
    throw new PacioError('EINPUT', `--from must be HOST:PORT, got '${req.from}'`)
  }

  if (req.path !== undefined) {
    try {
      req.path = normalize(req.path)
    } catch (error) {
      throw new PacioError('EINPUT', `--path must be a volume path starting with /, got '${req.path}': ${(error as Error).message}`)
    }
  }
}

function record(plan: PathPlan, note: RepairNote): Omit<FsRecord, 'v' | 'who' | 'at'> {
  const exp = plan.exp
  const body: Omit<FsRecord, 'v' | 'who' | 'at'> = {op: 'repair', path: plan.path, repair: note}
  if (exp) {
    Object.assign(body, {type: exp.type as FsRecord['type'], mode: exp.mode, uid: exp.uid, gid: exp.gid, target: exp.target})
    if (exp.type === 'file') Object.assign(body, {size: exp.size, digest: exp.digest})
    if (exp.xattrs && exp.xattrs.size > 0) body.xattrs = Object.fromEntries(exp.xattrs)
  }

  return body
}

function noteOf(plan: PathPlan, item: RepairItem, peer?: string): RepairNote {
  const note: RepairNote = {found: plan.found}
  if (item.source) note.source = item.source
  if (item.source === 'peer' && peer) note.peer = peer
  if (item.aside) note.aside = item.aside
  if (plan.exp) note.of = {epoch: plan.exp.last.epoch, txid: plan.exp.last.txid}
  return note
}

function historyRecord(plan: HistoryPlan, item: RepairItem, peer?: string): Omit<FsRecord, 'v' | 'who' | 'at'> {
  const repair: RepairNote = {found: plan.found, of: {epoch: plan.epoch, txid: plan.txid}}
  if (item.source) repair.source = item.source
  if (item.source === 'peer' && peer) repair.peer = peer
  if (item.aside) repair.aside = item.aside
  return {op: 'repair', path: plan.path, digest: plan.digest, repair}
}

const healAction = (plan: HistoryPlan) => `store version sha256 ${plan.digest.slice(0, 16)} (recorded at epoch ${plan.epoch}) in the history store again`

/** For each version to heal, the other paths whose expected content it is (their files on disk may have its bytes). */
function namesOf(history: HistoryPlan[], tree: ExpectedTree): Map<string, string[]> {
  const names = new Map<string, string[]>(history.map(h => [h.digest, []]))
  for (const [p, n] of tree.entries) if (n.type === 'file' && n.digest !== undefined) names.get(n.digest)?.push(p)
  return names
}

const leftItem = (u: Unrepairable): RepairItem => ({path: u.path, found: u.found, action: 'none', done: false, reason: u.reason})

export async function runRepair(request: RepairRequest): Promise<RepairReport> {
  const started = Date.now()
  const req = {...request}
  checkRequest(req)
  const layout = layoutOf(req.volume)
  const meta = readMeta(layout)
  const holder = lockHolder(layout)
  if (holder !== undefined) {
    throw new PacioError('EBUSY', `volume ${layout.root} is mounted or served by process ${holder}; repair needs it at rest`,
      {suggestion: 'unmount it first (Ctrl-C the mount, or `fusermount -u <mountpoint>`), then repair'})
  }

  const hasHistory = fs.existsSync(layout.history)
  let tree: ExpectedTree | undefined
  const onExpected = (t: ExpectedTree) => {
    tree = t
  }

  if (req.dryRun) {
    // read-only, like verify: nothing is opened for writing
    req.onPhase?.('verify')
    const report = await verifyVolume({volume: req.volume, path: req.path, full: req.full, cacheDir: req.cacheDir, onExpected,
      openLedger: (l, m) => openVolumeLedger(l, m, {write: false, tailBlocks: 0})})
    const {plans, history, left} = planRepair(report.divergences, tree!, req.path)
    const sources = new Sources(hasHistory ? new HistoryStore(layout.history) : undefined, undefined, me())
    const items: RepairItem[] = plans.map(plan => {
      const item: RepairItem = {path: plan.path, found: plan.found, action: describe(plan), done: false}
      const digest = plan.exp?.type === 'file' && plan.steps.some(s => s === 'create' || s === 'content') ? plan.exp.digest : undefined
      if (digest !== undefined) {
        const where = sources.where(digest) ?? (req.from ? 'peer' : undefined) // a peer's bytes are checked only when they are read
        if (where === undefined) item.reason = 'no source: not in the history store and no peer given (--from)'
        else if (where !== 'empty') item.source = where
      }

      return item
    })
    const names = namesOf(history, tree!)
    for (const h of history) {
      // a file on disk is a source only if its bytes hash right: only a real run reads them; else a peer, if given
      const item: RepairItem = {path: h.path, found: h.found, action: healAction(h), done: false}
      const onDisk = names.get(h.digest)!.length > 0
      if (onDisk) item.source = 'disk'
      else if (req.from) item.source = 'peer'
      else item.reason = 'no source: no current file has this version and no peer given (--from)'
      items.push(item)
    }

    items.push(...left.map(leftItem))
    const blocked = items.some(i => i.reason !== undefined)
    return {volume: layout.root, volumeId: meta.id, dryRun: true, findings: report.divergences.length, items, bytes: 0,
      status: items.length === 0 ? 'clean' : blocked ? 'unrepaired' : 'repaired', ms: Date.now() - started}
  }

  let stack
  try {
    stack = await openVolumeStack(req.volume, {create: false, identity: req.identity, purpose: 'paciofs repair', history: hasHistory})
  } catch (error) {
    // a ledger too damaged to write to: say what verify finds, and that none of it can be repaired
    if (!(error instanceof PacioError) || error.code !== 'ECORRUPT') throw error
    const report = await runRepair({...req, dryRun: true})
    const items = report.items.map(i => ({...i, action: 'none', source: undefined, reason: i.reason ?? `the volume cannot be written to: ${error.message}`}))
    return {...report, dryRun: false, items, status: items.length === 0 ? 'clean' : 'unrepaired', ms: Date.now() - started}
  }

  let peer: Peer | undefined
  let closePeer = () => {}
  try {
    const verify = () => verifyVolume({volume: req.volume, path: req.path, full: req.full, cacheDir: req.cacheDir, ownLock: true, onExpected,
      openLedger: async () => ({ledger: stack.ledger, close: async () => {}})})
    const phases: Record<string, number> = {}
    let mark = Date.now()
    const phase = (name: string) => {
      phases[name] = Date.now() - mark
      mark = Date.now()
    }

    req.onPhase?.('verify')
    const before = await verify()
    const {plans, history, left} = planRepair(before.divergences, tree!, req.path)
    if ((plans.length > 0 || history.length > 0) && req.from) {
      req.onPhase?.('peer')
      const {conn} = await connectRemote({server: req.from, volume: req.peerVolume!, identity: req.identity, trustNewServerKey: req.trustNewServerKey})
      const volume = new RemoteVolume(conn)
      closePeer = () => {
        volume.close().catch(() => {})
      }

      if (conn.volumeId !== meta.id) {
        throw new PacioError('EINPUT', `the peer's volume '${req.peerVolume}' is another volume (id ${conn.volumeId}; this one is ${meta.id}): not a replica`)
      }

      peer = {label: req.from, volume}
    }

    phase('verify')
    req.onPhase?.('repair')
    const sources = new Sources(stack.history, peer, me())
    const stamp = new Date().toISOString().replace(/[:.]/g, '-')
    const restorer = new Restorer(layout.root, layout.state, sources, stamp)
    const items: RepairItem[] = []
    const done = new Map<RepairItem, PathPlan>()
    for (const plan of plans) {
      const item: RepairItem = {path: plan.path, found: plan.found, action: describe(plan), done: false}
      items.push(item)
      try {
        const r = await restorer.run(plan)
        Object.assign(item, {done: true, source: r.source, aside: r.aside, bytes: r.bytes})
        done.set(item, plan)
      } catch (error) {
        item.reason = (error as Error).message
      }
    }

    const healed = await healHistory(restorer, stack.history, history, namesOf(history, tree!), items)
    await restorer.finish((p, error) => {
      const item = items.find(i => i.path === p)
      if (item) Object.assign(item, {done: false, reason: (error as Error).message})
    })

    phase('restore')
    // one record per path repaired, through the journal, the broadcast and the ledger
    const recorded: Array<Promise<unknown>> = []
    for (const [item, plan] of done) if (item.done) recorded.push(stack.recorder.record(record(plan, noteOf(plan, item, peer?.label)), me()))
    for (const [item, plan] of healed) recorded.push(stack.recorder.record(historyRecord(plan, item, peer?.label), me()))
    await Promise.all(recorded)
    await stack.history?.flush()
    await stack.recorder.committed()

    phase('record')
    items.push(...left.map(leftItem))
    req.onPhase?.('verify again')
    const after = before.divergences.length > 0 ? await verify() : before
    phase('verifyAgain')
    const bytes = items.reduce((s, i) => s + (i.bytes ?? 0), 0)
    const unrepaired = items.some(i => !i.done) || after.status !== 'clean'
    return {volume: layout.root, volumeId: meta.id, dryRun: false, findings: before.divergences.length, items,
      after: {status: after.status, divergences: after.divergences},
      status: before.status === 'clean' && items.length === 0 ? 'clean' : unrepaired ? 'unrepaired' : 'repaired', bytes, ms: Date.now() - started, phases}
  } finally {
    closePeer()
    await stack.close()
  }
}

/** Heals each version once (several paths may record it); one item per path and version. */
async function healHistory(restorer: Restorer, store: HistoryStore | undefined, history: HistoryPlan[], names: Map<string, string[]>,
  items: RepairItem[]): Promise<Map<RepairItem, HistoryPlan>> {
  const healed = new Map<RepairItem, HistoryPlan>()
  const byDigest = new Map<string, Promise<{source?: SourceName; aside?: string; bytes: number}>>()
  for (const plan of history) {
    const item: RepairItem = {path: plan.path, found: plan.found, action: healAction(plan), done: false}
    items.push(item)
    if (!store) {
      item.reason = 'the volume keeps no history store'
      continue
    }

    let once = byDigest.get(plan.digest)
    const first = once === undefined
    if (!once) {
      once = restorer.heal(store, plan, names.get(plan.digest) ?? [])
      byDigest.set(plan.digest, once)
    }

    try {
      const r = await once
      Object.assign(item, {done: true, source: r.source, aside: r.aside, bytes: first ? r.bytes : 0})
      healed.set(item, plan)
    } catch (error) {
      item.reason = (error as Error).message
    }
  }

  return healed
}
