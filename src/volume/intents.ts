/**
 * Crash recovery of entries made on disk whose record never reached the
 * journal. create, mknod, mkdir and symlink note an intent in the journal
 * before they touch the disk and drop it once the record is journaled; a
 * kill -9 in between leaves the entry on disk, unrecorded, and its intent in
 * the journal. The operation never returned to its caller, so the next mount
 * undoes it: the entry is removed if it is still the one the operation made
 * (changed no earlier than the intent, empty) and no record names it since.
 * Without this, verify would report a file nobody could have used as
 * `unexpected`.
 */
import fs from 'node:fs'
import type {Journal} from './journal.js'

/** Records that leave nothing at their path. */
const GONE = new Set(['unlink', 'rmdir', 'rename'])
/** The kernel stamps ctime with a coarse clock: allow it to lag Date.now() by this much. */
const CLOCK_SLACK_MS = 50

export interface UndoneIntent {
  op: string
  path: string
  undone: boolean
  why: string
}

export function undoUnrecorded(journal: Journal, root: string): UndoneIntent[] {
  const out: UndoneIntent[] = []
  for (const it of journal.intents()) {
    out.push({op: it.op, path: it.path, ...undoOne(journal, root, it)})
    journal.settleIntent(it.id)
  }

  return out
}

function undoOne(journal: Journal, root: string, it: {op: string; path: string; at: number}): {undone: boolean; why: string} {
  const latest = journal.latestOpAt(it.path)
  if (latest !== undefined && !GONE.has(latest)) return {undone: false, why: `recorded (${latest})`}
  const backing = root + it.path
  let st: fs.Stats
  try {
    st = fs.lstatSync(backing)
  } catch {
    return {undone: false, why: 'not on disk'}
  }

  if (st.ctimeMs < it.at - CLOCK_SLACK_MS) return {undone: false, why: 'older than the intent'}
  if (st.isDirectory()) {
    try {
      fs.rmdirSync(backing)
    } catch (error) {
      return {undone: false, why: `not removed: ${(error as Error).message}`}
    }
  } else {
    if (st.isFile() && st.size > 0) return {undone: false, why: 'not empty'}
    fs.unlinkSync(backing)
  }

  return {undone: true, why: 'made on disk, never recorded'}
}
