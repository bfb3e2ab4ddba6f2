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
 */
import {posix} from 'node:path'

export interface NameChanges {
  /** a name was made at `path` (`dir`: it is a directory, empty) */
  added(path: string, dir?: boolean): void
  /** the name at `path` is gone (with everything known below it) */
  removed(path: string): void
}

export class NameCache {
  private readonly dirs = new Map<string, Set<string>>()
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
   * undefined: none, or it failed); `apply` says what it did to the names.
   */
  end(version: bigint | undefined, apply?: (c: NameChanges) => void): void {
    this.changing--
    if (!version || !apply) {
      this.forget()
      return
    }

    if (this.version === undefined || version !== this.version + 1n) this.dirs.clear()
    this.version = version
    this.at = this.now()
    apply({
      added: (path, dir) => {
        this.dirs.get(posix.dirname(path))?.add(posix.basename(path))
        if (dir) this.dirs.set(path, new Set())
      },
      removed: path => {
        this.dirs.get(posix.dirname(path))?.delete(posix.basename(path))
        for (const d of [...this.dirs.keys()]) if (d === path || d.startsWith(path + '/')) this.dirs.delete(d)
      },
    })
  }

  /** Forgets every directory (a new session, a change whose effect is not known here). */
  forget(): void {
    this.dirs.clear()
    this.version = undefined
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
}
