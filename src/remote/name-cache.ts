/**
 * The names a remote mount knows to be in a directory, to answer the
 * kernel's lookup of a name that is not there without a round trip (the
 * kernel looks every new name up before it creates it: one Getattr answered
 * ENOENT per created file).
 *
 * What is known, and why it holds: a directory this client made itself was
 * empty when made; every change to a name this client makes afterwards comes
 * back with the server's namespace version (server/namespace-clock.ts). If
 * that version is exactly one above the last one this client saw, no one
 * else changed any name in the volume in between, so the directories it knows
 * are still exactly known, with its own change applied. Anything else — a
 * gap in the versions (another client changed a name), a change answered
 * without a version (it ran beside another, failed, or the server is older),
 * a change of this client's that carries none (link, rename), a new session —
 * forgets everything.
 *
 * A name is answered "absent" only while no change of this client's is under
 * way and the last version was seen less than `ttlMs` ago: another client's
 * new name shows up here within that time (less than the kernel's own
 * one-second entry cache, the documented consistency of remote mounts).
 *
 * The attributes of entries this client made (not directories: their own
 * attributes change with every name made in them) answer the kernel's lookup
 * of them too — the one before each unlink — under the same rules and one
 * more: every reply also carries how many changes other sessions made
 * (server/others-count.ts), and the attributes are kept only while that
 * number stays the same; any other number, or none, forgets them all. This
 * client's own changes to an entry otherwise than by a name (a write, a
 * truncate, chmod, an xattr, or an open or read, which may change its access
 * time) forget its attributes before they are sent (`touched`).
 */
import type {BigIntStats} from 'node:fs'
import {posix} from 'node:path'

export interface NameChanges {
  /** a name was made at `path` (`dir`: it is a directory, empty; `stat`: the new entry's attributes, as the reply gave them) */
  added(path: string, dir?: boolean, stat?: BigIntStats): void
  /** the name at `path` is gone (with everything known below it) */
  removed(path: string): void
}

export class NameCache {
  private readonly dirs = new Map<string, Set<string>>()
  /** attributes of entries this client made and has not touched since */
  private readonly stats = new Map<string, BigIntStats>()
  /** the count of other sessions' changes the kept attributes go with */
  private others: bigint | undefined
  private version: bigint | undefined
  private at = 0
  private changing = 0

  constructor(private readonly ttlMs = 500, private readonly now: () => number = () => performance.now()) {}

  /** One of this client's name changes begins (call `end` when it is answered, also on failure). */
  begin(): void {
    this.changing++
  }

  /**
   * The change ended. `version`: the namespace version its answer carried (0 or
   * undefined: none, or it failed); `apply` says what it did to the names;
   * `others`: the count of other sessions' changes the answer carried (0 or undefined: none).
   */
  end(version: bigint | undefined, apply?: (c: NameChanges) => void, others?: bigint): void {
    this.changing--
    if (!version || !apply) {
      this.forget()
      return
    }

    if (this.version === undefined || version !== this.version + 1n) {
      this.dirs.clear()
      this.stats.clear()
    }

    if (!others || others !== this.others) this.stats.clear()
    this.others = others || undefined
    this.version = version
    this.at = this.now()
    apply({
      added: (path, dir, stat) => {
        this.dirs.get(posix.dirname(path))?.add(posix.basename(path))
        if (dir) this.dirs.set(path, new Set())
        else if (stat && this.others !== undefined) this.stats.set(path, stat)
      },
      removed: path => {
        this.dirs.get(posix.dirname(path))?.delete(posix.basename(path))
        for (const d of [...this.dirs.keys()]) if (d === path || d.startsWith(path + '/')) this.dirs.delete(d)
        for (const p of [...this.stats.keys()]) if (p === path || p.startsWith(path + '/')) this.stats.delete(p)
      },
    })
  }

  /** Forgets every directory and every entry's attributes (a new session, a change whose effect is not known here). */
  forget(): void {
    this.dirs.clear()
    this.stats.clear()
    this.version = undefined
    this.others = undefined
  }

  /** This client is about to change (or read) the entry at `path` otherwise than by a name: its attributes are no longer known. */
  touched(path: string): void {
    if (this.stats.size > 0) this.stats.delete(path)
  }

  /** The attributes of an entry this client made, if they are known to be still what they were. */
  stat(path: string): BigIntStats | undefined {
    if (this.changing > 0 || this.version === undefined || this.others === undefined || this.now() - this.at >= this.ttlMs) return undefined
    return this.stats.get(path)
  }

  /** True if `path` is known not to exist (its directory's names are known, and it is not among them). */
  absent(path: string): boolean {
    if (this.changing > 0 || this.version === undefined || this.now() - this.at >= this.ttlMs) return false
    const names = this.dirs.get(posix.dirname(path))
    return names !== undefined && !names.has(posix.basename(path))
  }

  /** Directories whose names are known (for tests and statistics). */
  get known(): number {
    return this.dirs.size
  }

  /** Entries whose attributes are known (for tests and statistics). */
  get knownStats(): number {
    return this.stats.size
  }
}
