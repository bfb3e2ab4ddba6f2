/**
 * The remote client's short-lived attribute cache: attributes the server sent
 * back with a change (a new file's, its directory's after a create or
 * unlink), and the answers to `security.capability` lookups (the kernel asks
 * for that xattr before every write(2)). It saves the round trips the kernel
 * would otherwise make right after a change: the attributes of a directory it
 * just changed (it checks permissions with them, `default_permissions`) and
 * of a file it just created.
 *
 * Rules that keep it honest:
 * - an entry lives at most `ttlMs` (less than the kernel's own one-second
 *   attribute cache, so other clients' changes still show within about a
 *   second and a half at worst);
 * - every change this client makes empties it first (a write empties the
 *   attributes, not the xattrs: a write changes size and times, never an
 *   xattr; the kernel removes a capability by removexattr, a change);
 * - an answer is stored only if no change began or was under way since the
 *   request was sent (`begin()` hands out a ticket; `fill` checks it).
 */
import type {BigIntStats} from 'node:fs'

interface Entry<T> {
  value: T
  at: number
}

export type XattrAnswer = {value: Buffer} | {errno: string; message: string}

/** The only xattr whose answers are kept: the one the kernel reads before each write(2). */
export const CACHED_XATTR = 'security.capability'

export class AttrCache {
  private readonly stats = new Map<string, Entry<BigIntStats>>()
  private readonly xattrs = new Map<string, Entry<XattrAnswer>>()
  /** bumped by every change this client begins */
  private epoch = 0
  /** changes under way */
  private changing = 0

  constructor(private readonly ttlMs = 500, private readonly now: () => number = () => performance.now()) {}

  /** A change begins: forget what it may make stale; returns a ticket for `end`. */
  begin(scope: 'all' | 'data' = 'all'): number {
    this.changing++
    this.epoch++
    this.stats.clear()
    if (scope === 'all') this.xattrs.clear()
    return this.epoch
  }

  /** The change ended (also on failure): a write's data may still travel, but its attributes were dropped at begin. */
  end(): void {
    this.changing--
  }

  /** A ticket for a query (not a change): its answer may be stored only if nothing changed meanwhile. */
  ticket(): number {
    return this.changing === 0 ? this.epoch : -1
  }

  /** Stores what the server answered, if the ticket is still good. For a change: its own ticket, after `end`. */
  fill(ticket: number, put: (c: {stat(path: string, s: BigIntStats | undefined): void; xattr(path: string, name: string, a: XattrAnswer): void}) => void): void {
    if (ticket !== this.epoch || this.changing !== 0) return
    const at = this.now()
    put({
      stat: (path, s) => {
        if (s) this.stats.set(path, {value: s, at})
      },
      xattr: (path, name, a) => {
        if (name === CACHED_XATTR) this.xattrs.set(`${path}\0${name}`, {value: a, at})
      },
    })
  }

  stat(path: string): BigIntStats | undefined {
    return this.fresh(this.stats, path)
  }

  xattr(path: string, name: string): XattrAnswer | undefined {
    return name === CACHED_XATTR ? this.fresh(this.xattrs, `${path}\0${name}`) : undefined
  }

  private fresh<T>(m: Map<string, Entry<T>>, key: string): T | undefined {
    const e = m.get(key)
    if (!e) return undefined
    if (this.now() - e.at < this.ttlMs) return e.value
    m.delete(key)
    return undefined
  }
}
