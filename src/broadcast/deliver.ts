/**
 * Delivery: read blocks from a Ledger, judge every envelope with a
 * FifoChecker, and hand out payloads and violations in ledger order.
 */
import {PacioError} from '../errors.js'
import type {Block, Ledger} from '../ledger/types.js'
import type {Delivery, Violation} from './types.js'
import {FifoChecker, type CheckerState} from './validate.js'

export interface DeliverOptions {
  /** keep following new blocks after the existing ones (until stop()) */
  follow?: boolean
  /**
   * Checker state saved at `fromEpoch` (from an earlier stream's state()).
   * Without it, a stream starting after genesis first replays the ledger from
   * genesis, silently, to learn every sender's position.
   */
  state?: CheckerState
  recentWindow?: number
}

export interface DeliveryStream {
  /**
   * Settles when delivery ends: after the last existing block when not
   * following, after stop() when following. Rejects if reading the ledger
   * or a callback fails.
   */
  readonly done: Promise<void>
  stop(): void
  /** The checker's state now; pass it as `state` to resume at state.nextEpoch. */
  state(): CheckerState
}

export function deliver(
  ledger: Ledger,
  fromEpoch: number,
  onDelivery: (d: Delivery) => void,
  onViolation: (v: Violation) => void,
  opts: DeliverOptions = {},
): DeliveryStream {
  let checker: FifoChecker
  let stopped = false
  let unfollow: (() => void) | undefined
  let settle!: {resolve: () => void; reject: (e: Error) => void}
  const done = new Promise<void>((resolve, reject) => {
    settle = {resolve, reject}
  })
  const finish = (error?: Error) => {
    if (stopped) return
    stopped = true
    unfollow?.()
    if (error) settle.reject(error)
    else settle.resolve()
  }
  const feed = (b: Block) => {
    if (stopped) return
    try {
      checker.checkBlock(b, onDelivery, onViolation)
    } catch (error) {
      finish(error as Error)
    }
  }

  if (opts.state && opts.state.nextEpoch !== fromEpoch) {
    finish(new PacioError('EINPUT', `saved checker state is for epoch ${opts.state.nextEpoch}, not ${fromEpoch}`))
    return {done, stop: () => finish(), state: () => opts.state!}
  }
  checker = new FifoChecker(opts.state, {recentWindow: opts.recentWindow})

  void (async () => {
    if (!opts.state && fromEpoch > 0) {
      const warm = new FifoChecker(undefined, {recentWindow: opts.recentWindow})
      for await (const b of ledger.read(0, fromEpoch - 1)) {
        if (stopped) return
        warm.checkBlock(b, () => {}, () => {})
      }
      checker = new FifoChecker({...warm.snapshot(), nextEpoch: fromEpoch}, {recentWindow: opts.recentWindow})
    }
    if (opts.follow) {
      if (!stopped) unfollow = ledger.follow(fromEpoch, feed, (error) => finish(error))
      return
    }
    for await (const b of ledger.read(fromEpoch)) {
      if (stopped) return
      feed(b)
    }
    finish()
  })().catch((error: Error) => finish(error))

  return {done, stop: () => finish(), state: () => checker.snapshot()}
}
