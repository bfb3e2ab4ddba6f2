/**
 * How a long-running command (mount, remote mount, serve) learns that it
 * should stop: SIGINT, SIGTERM or SIGHUP — listened for from the start, so a
 * signal during start-up is not lost — or, for a mount, its mountpoint being
 * unmounted from outside.
 */
import {mountedAt} from '../fuse/mount.js'

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']

export class StopSignals {
  /** Why the command stops, once it is known. */
  reason: string | undefined
  private wake: (() => void) | undefined
  private readonly onSignal = (sig: NodeJS.Signals) => {
    this.reason ??= `signal ${sig}`
    this.wake?.()
  }

  constructor() {
    for (const s of SIGNALS) process.on(s, this.onSignal)
  }

  /** Resolves on a signal or, with a mountpoint, once it is no longer mounted (checked every second). */
  async until(mountpoint?: string): Promise<void> {
    if (this.reason !== undefined) return
    await new Promise<void>(resolve => {
      const poll = mountpoint === undefined ? undefined : setInterval(() => {
        if (!mountedAt(mountpoint)) {
          this.reason ??= 'unmounted externally'
          done()
        }
      }, 1000)
      const done = () => {
        if (poll) clearInterval(poll)
        resolve()
      }

      this.wake = done
    })
  }

  /** Stops the command from within (it learnt that it has nothing more to do). */
  request(reason: string): void {
    this.reason ??= reason
    this.wake?.()
  }

  dispose(): void {
    for (const s of SIGNALS) process.off(s, this.onSignal)
  }
}
