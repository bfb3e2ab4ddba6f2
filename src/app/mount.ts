/**
 * `paciofs mount`: open (or create) the volume, mount it, serve until
 * SIGINT/SIGTERM or an external unmount, then flush, commit, unmount and
 * release everything. The process exits only after the mount is gone.
 */
import {StopSignals} from './stop.js'
import {checkMountpoint, limitHeapGrowth, limitMallocArenas, mountVolume, trimMalloc} from '../fuse/mount.js'
import {readTimeline} from '../history/timeline.js'
import {HistoryView} from '../history/view.js'
import {formatChainSpec, parseChainSpec} from '../ledger/multichain/spec.js'
import {openVolumeStack} from './stack.js'

export interface MountRequest {
  mountpoint: string
  volume: string
  identity?: string
  debug?: boolean
  /** keep every version in the history store (default); false only for baselines */
  history?: boolean
  /** --chain: the ledger of a new volume (an existing one must match) */
  chain?: string
  /** --confirmations for a MultiChain ledger */
  confirmations?: number
  /** a MultiChain reorganisation or re-sent batch */
  onWarning?(message: string): void
  /** Called once the mount is live (for the command to print where). */
  onReady?(info: MountedInfo): void
  /** Called for operations that failed for an internal reason (answered EIO). */
  onInternalError?(op: string, error: unknown): void
}

export interface MountedInfo {
  mountpoint: string
  volume: string
  volumeId: string
  created: boolean
  member: string
  /** 'embedded', or the chain (password masked) */
  ledger: string
}

export interface MountSummary extends MountedInfo {
  records: number
  reason: string
}

/** Mounts and resolves when the mount has ended cleanly (signal or external unmount). */
export async function runMount(req: MountRequest): Promise<MountSummary> {
  // Signals are ours from the first moment: one that arrives while the volume
  // opens or the mount comes up still ends in a clean unmount and commit.
  limitMallocArenas() // before the threads that serve the mount start
  limitHeapGrowth()
  const stopTrimming = trimMalloc()
  const stop = new StopSignals()
  try {
    checkMountpoint(req.mountpoint) // before anything is created
    const stack = await openVolumeStack(req.volume, {create: true, identity: req.identity, purpose: `mount ${req.mountpoint}`, history: req.history,
      chain: req.chain, confirmations: req.confirmations, onWarning: req.onWarning})
    let mounted
    try {
      const volume = stack.history ? new HistoryView(stack.volume, stack.history, () => readTimeline(stack.layout.root, stack.ledger)) : stack.volume
      mounted = await mountVolume(volume, req.mountpoint, {fsname: `paciofs:${stack.layout.root}`, debug: req.debug,
        onInternalError: req.onInternalError})
    } catch (error) {
      await stack.close()
      throw error
    }

    const ledger = stack.meta.ledger.driver === 'multichain' ? `MultiChain ${stack.meta.ledger.chain ?? ''} ${formatChainSpec(parseChainSpec(stack.meta.ledger.spec ?? ''), true)}`.replace(/ +/g, ' ') : 'embedded ledger'
    const info: MountedInfo = {mountpoint: mounted.mountpoint, volume: stack.layout.root, volumeId: stack.meta.id, created: stack.created, member: stack.member, ledger}
    if (stop.reason === undefined) {
      req.onReady?.(info)
      await stop.until(mounted.mountpoint)
    }

    await mounted.unmount()
    const records = stack.recordCount()
    await stack.close()
    return {...info, records, reason: stop.reason ?? 'stopped'}
  } finally {
    stop.dispose()
    stopTrimming()
  }
}
