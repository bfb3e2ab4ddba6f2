/**
 * The kernel's readahead for a remote mount. A FUSE file system got at most
 * 128 KiB per read (libfuse 2; a remote mount now asks for requests of up to
 * 1 MiB, fuse/mount.ts maxWrite), and with the default window of 128 KiB the
 * kernel asks for the next 128 KiB only when the previous one came back: a
 * sequential reader then waits a whole round trip through the mount process
 * per 128 KiB (measured: one read under way 99% of the time). With a window
 * of 1 MiB the kernel keeps several reads in flight, which the mount serves
 * from its own read-ahead (remote/read-ahead.ts): about 2x for a 256 MiB
 * `dd` read here. The window lives in the mount's backing device info
 * (/sys/class/bdi/MAJOR:MINOR/read_ahead_kb); changing it needs root, and
 * without it the default stays (only speed suffers).
 */
import {readFileSync, writeFileSync} from 'node:fs'

export const REMOTE_READ_AHEAD_KB = 1024

/**
 * The bdi file of the file system mounted at `mountpoint`, from
 * /proc/self/mountinfo (never a stat of the mountpoint: called from the
 * mount's own process, that would wait for an answer only it can give).
 */
export function bdiReadAheadFile(mountpoint: string, mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string | undefined {
  const unescape = (f: string) => f.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(Number.parseInt(o, 8)))
  let found: string | undefined
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ')
    if (f.length > 4 && unescape(f[4]) === mountpoint && /^\d+:\d+$/.test(f[2])) found = f[2] // the last one mounted there
  }

  return found && `/sys/class/bdi/${found}/read_ahead_kb`
}

/** Sets the mount's readahead window; false if it could not (not root, not Linux). */
export function widenReadAhead(mountpoint: string, kb = Number(process.env.PACIOFS_READ_AHEAD_KB ?? REMOTE_READ_AHEAD_KB)): boolean {
  if (!Number.isSafeInteger(kb) || kb <= 0) return false
  try {
    const file = bdiReadAheadFile(mountpoint)
    if (!file) return false
    writeFileSync(file, String(kb))
    return true
  } catch {
    return false
  }
}
