/**
 * After a crash: captures that were promised (their record is journaled) but
 * may not have finished. The file is captured again if it still holds the
 * promised content (in its first `size` bytes, when the promise names a
 * size); otherwise the version is gone and verify reports it as
 * history-missing.
 */
import fs from 'node:fs'
import {openQuietSync} from '../quiet-open.js'
import {PathResolver} from '../volume/paths.js'
import type {HistoryStore} from './store.js'

export async function catchUp(store: HistoryStore, root: string): Promise<{captured: number; lost: number}> {
  const paths = new PathResolver(root)
  let captured = 0
  let lost = 0
  for (const p of store.pending()) {
    if (p.digest && store.has(p.digest)) {
      await store.done(p.token)
      continue
    }

    let ok = false
    try {
      const fd = openQuietSync(paths.resolve(p.path), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW)
      try {
        // a version of a file's first bytes (its writer went on): those bytes, however long the file got
        ok = (await store.capture(fd, undefined, {upTo: p.size})).digest === p.digest
      } finally {
        fs.closeSync(fd)
      }
    } catch { /* gone or renamed */ }

    if (ok) captured++
    else lost++
    await store.done(p.token)
  }

  return {captured, lost}
}
