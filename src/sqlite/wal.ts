/**
 * How long a background checkpoint's TRUNCATE waits for the writer's lock (the
 * busy timeout of the checkpointing connection; see checkpointWal).
 */
export const CHECKPOINT_BUSY_MS = 100

/** WAL frames (pages) past which a background checkpoint also empties the WAL: 64 MiB of 4 KiB pages. */
export const TRUNCATE_FRAMES = 16_384

/**
 * One round of a background WAL checkpoint, for a connection of its own
 * (checkpointer.ts's thread, or the embedded ledger's writer thread hosting it).
 *
 * A PASSIVE checkpoint never waits for the writer, but it only copies pages:
 * SQLite starts the WAL again from its beginning only when a writer finds every
 * frame already copied, which never happens while the writer commits faster
 * than one round apart. Under a steady stream of operations the WAL then grows
 * without end (3.5 GB for 100,000 files created). So once the WAL holds more
 * than `restartFrames` frames, PASSIVE rounds first copy all but the last few
 * frames (up to `maxPassive` rounds, else the next call goes on), and a TRUNCATE copies those, empties the WAL file (its disk space
 * goes back) and makes the next commit start it anew: the writer waits only
 * for that last short copy. The connection's busy timeout bounds how long the
 * TRUNCATE waits for the writer; if it cannot, the next round tries again.
 *
 * Self-contained (no imports, no outer names): checkpointer.ts runs its source
 * text in a worker.
 */
export function checkpointWal(db: {pragma(sql: string): unknown}, restartFrames: number, maxPassive = 4): {log: number; restarted: boolean} {
  // written without inner functions: a transpiler may wrap those in helpers the worker does not have
  let truncate = false
  for (let round = 0; round <= maxPassive; round++) {
    let r: {busy: number; log: number; checkpointed: number}
    try {
      r = (db.pragma(`wal_checkpoint(${truncate ? 'TRUNCATE' : 'PASSIVE'})`) as Array<typeof r>)[0]
    } catch {
      return {log: -1, restarted: false} // busy or closed meanwhile: the next round tries again
    }

    if (truncate) return {log: r.log, restarted: r.busy === 0}
    if (r.log <= restartFrames) return {log: r.log, restarted: false}
    // TRUNCATE only once PASSIVE has copied all but the last few frames: it holds the writer's lock
    // while it copies the rest and syncs, so with many frames left the writer (whose busy timeout
    // ends in an error for its caller) would wait for all of them. Not caught up: the next round.
    if (r.log - r.checkpointed <= 64) truncate = true
    else if (round >= maxPassive - 1) return {log: r.log, restarted: false}
  }

  return {log: -1, restarted: false} // not reached
}
