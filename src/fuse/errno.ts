/** Errors -> negative errno values, at the FUSE boundary only. */
import {constants} from 'node:os'

const table = constants.errno as Record<string, number>

export function toErrno(error: unknown): number {
  const e = error as {code?: unknown; errno?: unknown}
  if (typeof e?.code === 'string' && table[e.code] !== undefined) return -table[e.code]
  if (typeof e?.errno === 'number' && e.errno < 0) return e.errno
  return -table.EIO
}

export const EIO = -table.EIO
