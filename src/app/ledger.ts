/**
 * Picks and opens a volume's ledger driver from volume.json: the embedded
 * ledger, or MultiChain (an existing node's RPC, or a local node in the
 * state dir that this function starts and the returned close() stops).
 * `--chain` chooses the driver when a volume is created; afterwards the
 * volume remembers it, and log/verify/history use it without the flag.
 */
import fs from 'node:fs'
import path from 'node:path'
import {loadIdentity, type Identity} from '../crypto/sign.js'
import {PacioError} from '../errors.js'
import {EmbeddedLedger} from '../ledger/embedded/index.js'
import {createChain, findBinaries, formatChainSpec, MultiChainLedger, parseChainSpec, startNode, streamName, type ChainSpec, type LocalNode} from '../ledger/multichain/index.js'
import type {AuditableLedger} from '../ledger/types.js'
import {writeMeta, type LedgerMeta, type VolumeLayout, type VolumeMeta} from '../volume/layout.js'

export interface OpenedLedger {
  ledger: AuditableLedger
  /** closes the ledger and stops a local MultiChain node this process started */
  close(): Promise<void>
}

export interface LedgerChoice {
  /** the --chain value, if given */
  chain?: string
  /** --confirmations, if given */
  confirmations?: number
}

/** The ledger fields of volume.json for a new volume. */
export function newLedgerMeta(choice: LedgerChoice): LedgerMeta {
  const spec = parseChainSpec(choice.chain ?? 'embedded')
  if (spec.kind === 'embedded') return {driver: 'embedded'}
  if (spec.kind === 'new' || spec.kind === 'join') findBinaries() // before anything is created: a clear error when MultiChain is missing
  return {driver: 'multichain', spec: formatChainSpec(spec), confirmations: choice.confirmations ?? 1}
}

/** An existing volume opened with --chain: the same chain (new RPC credentials or address allowed), or a clear refusal. */
export function checkChoice(layout: VolumeLayout, meta: VolumeMeta, choice: LedgerChoice): void {
  if (choice.chain === undefined && choice.confirmations === undefined) return
  const want = parseChainSpec(choice.chain ?? meta.ledger.spec ?? 'embedded')
  const have = meta.ledger.driver === 'multichain' ? parseChainSpec(meta.ledger.spec ?? '') : {kind: 'embedded' as const}
  const name = (c: ChainSpec) => c.kind === 'rpc' || c.kind === 'join' ? c.chain : c.kind
  const same = want.kind === have.kind && (want.kind !== 'rpc' || name(want) === name(have)) && (want.kind !== 'join' || name(want) === name(have))
  if (!same) {
    throw new PacioError('EINPUT', `volume ${layout.root} records on ${formatChainSpec(have, true)}, not on ${formatChainSpec(want, true)}; a volume stays on the ledger it was created with`,
      {suggestion: 'leave out --chain (the volume remembers its chain), or create a new volume'})
  }
  let changed = false
  if (want.kind === 'rpc' && formatChainSpec(want) !== meta.ledger.spec) {
    meta.ledger.spec = formatChainSpec(want) // the node moved or its credentials changed; the genesis check still holds
    changed = true
  }
  if (choice.confirmations !== undefined && meta.ledger.driver === 'multichain' && choice.confirmations !== meta.ledger.confirmations) {
    meta.ledger.confirmations = choice.confirmations
    changed = true
  }
  if (changed) writeMeta(layout, meta)
}

function nodeKey(layout: VolumeLayout): Identity | undefined {
  return fs.existsSync(layout.nodeKey) ? loadIdentity(layout.nodeKey) : undefined
}

/** Where a local MultiChain node of this volume keeps its chain. */
export function chainDir(layout: VolumeLayout): string {
  return path.join(layout.state, 'multichain')
}

export async function openVolumeLedger(layout: VolumeLayout, meta: VolumeMeta, opts: {
  write: boolean
  identity?: Identity
  tailBlocks?: number
  onWarning?: (message: string) => void
}): Promise<OpenedLedger> {
  if (meta.ledger.driver === 'embedded' || meta.ledger.driver === undefined) {
    const ledger = opts.write
      ? await EmbeddedLedger.open({file: layout.ledger, ledgerId: meta.id, identity: opts.identity!, tailBlocks: opts.tailBlocks})
      : await EmbeddedLedger.openReadOnly(layout.ledger, {ledgerId: meta.id, tailBlocks: opts.tailBlocks})
    return {ledger, close: () => ledger.close()}
  }
  if (meta.ledger.driver !== 'multichain') throw new PacioError('EFOREIGN', `${layout.meta}: unknown ledger driver ${JSON.stringify(meta.ledger.driver)}`)

  const spec = parseChainSpec(meta.ledger.spec ?? '')
  let node: LocalNode | undefined
  let rpc
  if (spec.kind === 'rpc') {
    rpc = {host: spec.host, port: spec.port, user: spec.user, pass: spec.pass, chain: spec.chain}
  } else if (spec.kind === 'new' || spec.kind === 'join') {
    const datadir = chainDir(layout)
    const chain = meta.ledger.chain ?? (spec.kind === 'join' ? spec.chain : `pfs-${meta.id.replace(/-/g, '').slice(0, 12)}`)
    const fresh = !fs.existsSync(path.join(datadir, chain))
    if (fresh && !opts.write) throw new PacioError('ENOVOLUME', `${datadir}: the volume's MultiChain chain ${chain} is missing`)
    if (fresh && spec.kind === 'new') createChain(datadir, chain)
    node = await startNode({datadir, chain, connect: fresh && spec.kind === 'join' ? `${spec.chain}@${spec.host}:${spec.port}` : undefined})
    rpc = node.rpc
    if (meta.ledger.chain !== chain) {
      meta.ledger.chain = chain
      writeMeta(layout, meta)
    }
  } else {
    throw new PacioError('EFOREIGN', `${layout.meta}: ledger driver multichain without a chain`)
  }

  try {
    const ledger = await MultiChainLedger.open({rpc, ledgerId: meta.id, stream: meta.ledger.stream ?? streamName(meta.id), identity: opts.identity ?? nodeKey(layout),
      confirmations: meta.ledger.confirmations ?? 1, genesis: meta.ledger.genesis, readonly: !opts.write})
    if (opts.onWarning) ledger.onWarning = opts.onWarning
    if (opts.write && (meta.ledger.genesis !== ledger.genesis || meta.ledger.stream !== ledger.stream)) {
      meta.ledger.genesis = ledger.genesis
      meta.ledger.stream = ledger.stream
      writeMeta(layout, meta)
    }
    return {ledger, close: async () => {
      try {
        await ledger.close()
      } finally {
        await node?.stop()
      }
    }}
  } catch (error) {
    await node?.stop()
    throw error
  }
}
