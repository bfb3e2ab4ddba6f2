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
 * frames, and a TRUNCATE copies those, empties the WAL file (its disk space
 * goes back) and makes the next commit start it anew: the writer waits only
 * for that last short copy. The connection's busy timeout bounds how long the
 * TRUNCATE waits for the writer; if it cannot, the next round tries again.
 *
 * Self-contained (no imports, no outer names): checkpointer.ts runs its source
 * text in a worker.
 */
export function checkpointWal(db: {pragma(sql: string): unknown}, restartFrames: number, maxPassive = 4): {log: number; restarted: boolean} {
  // written without inner functions: a transpiler may wrap those in helpers the worker does not have
  for (let round = 0; round <= maxPassive; round++) {
    const mode = round === maxPassive ? 'TRUNCATE' : 'PASSIVE'
    let r: {busy: number; log: number; checkpointed: number}
    try {
      r = (db.pragma(`wal_checkpoint(${mode})`) as Array<typeof r>)[0]
    } catch {
      return {log: -1, restarted: false} // busy or closed meanwhile: the next round tries again
    }

    if (mode === 'TRUNCATE') return {log: r.log, restarted: r.busy === 0}
    if (r.log <= restartFrames) return {log: r.log, restarted: false}
    if (r.log - r.checkpointed <= 64) round = maxPassive - 1 // all but the last few frames copied: TRUNCATE next
  }

  return {log: -1, restarted: false} // not reached
}
