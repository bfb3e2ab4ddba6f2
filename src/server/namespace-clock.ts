/**
 * A served volume's namespace version: a number the server bumps with every
 * change to a name (create, mknod, mkdir, symlink, link, unlink, rmdir,
 * rename), whoever makes it. A change that ran alone (no other name change
 * was under way when it began or began while it ran) is answered with the
 * version it made, so a client that knew the version just before it knows
 * that nothing else changed a name meanwhile: what it knew of the names in a
 * directory (the remote mount's NameCache) still holds, with its own change
 * applied. The version starts at a random number, so a restarted server's
 * versions do not continue an old sequence.
 */
import {randomInt} from 'node:crypto'

export class NamespaceClock {
  private version = BigInt(randomInt(1, 2 ** 47)) << 16n
  private active = 0

  /** Runs a name change; `version` is set only if it ran alone (and succeeded). */
  async change<T>(work: () => Promise<T>): Promise<{value: T; version?: bigint}> {
    const alone = this.active === 0
    const mine = ++this.version
    this.active++
    let value: T
    try {
      value = await work()
    } finally {
      this.active--
    }

    return {value, version: alone && this.version === mine ? mine : undefined}
  }
}

const clocks = new WeakMap<object, NamespaceClock>()

/** The clock of a served volume (one per volume, shared by all its sessions). */
export function namespaceClock(volume: object): NamespaceClock {
  let c = clocks.get(volume)
  if (!c) clocks.set(volume, (c = new NamespaceClock()))
  return c
}
