/**
 * How many changes other sessions made to a served volume: a number each
 * session can compare with the one it was told before, to know that nobody
 * else changed anything in between (a name, attributes, data, xattrs).
 *
 * Every change counts twice, when it begins and when it ends, for the volume
 * and for the session making it; a session's count of others' changes is the
 * volume's less its own. A session told the same number twice knows that no
 * other session's change began or ended in between, so the attributes of an
 * entry it made and has not touched since are still the ones it was sent
 * (the remote mount's NameCache answers the kernel's lookup with them). While
 * another session's change is under way the count is not given (it may have
 * changed something already). The count starts at a random number, so a
 * restarted server's numbers do not continue an old sequence.
 */
import {randomInt} from 'node:crypto'

export class OthersCount {
  private total = BigInt(randomInt(1, 2 ** 47)) << 16n
  private readonly own = new Map<object, {count: bigint; active: number}>()
  private active = 0

  private of(session: object): {count: bigint; active: number} {
    let o = this.own.get(session)
    if (!o) this.own.set(session, (o = {count: 0n, active: 0}))
    return o
  }

  /** A change of `session` begins (call `end` when it has ended, also on failure). */
  begin(session: object): void {
    const o = this.of(session)
    o.count++
    o.active++
    this.total++
    this.active++
  }

  end(session: object): void {
    const o = this.of(session)
    o.count++
    o.active--
    this.total++
    this.active--
  }

  /** Changes of other sessions so far; undefined while one of them is under way. */
  others(session: object): bigint | undefined {
    const o = this.own.get(session)
    if (this.active - (o?.active ?? 0) > 0) return undefined
    return this.total - (o?.count ?? 0n)
  }

  /** The session ended: its own count is no longer needed. */
  forget(session: object): void {
    const o = this.own.get(session)
    if (o && o.active === 0) this.own.delete(session)
  }
}

const counts = new WeakMap<object, OthersCount>()

/** The count of a served volume (one per volume, shared by all its sessions). */
export function othersCount(volume: object): OthersCount {
  let c = counts.get(volume)
  if (!c) counts.set(volume, (c = new OthersCount()))
  return c
}
