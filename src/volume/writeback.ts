/**
 * Early writeback of a file written sequentially through the volume (a
 * server's writes; a local mount's go through the binding): every STEP bytes
 * of a sequential run the disk is told to start writing them
 * (sync_file_range, SYNC_FILE_RANGE_WRITE, on the thread pool), so the data
 * goes to the disk while the writer is still sending, instead of all of it
 * at the writer's fsync. Measured here: a 1 GiB file written at ~420 MB/s
 * then fsynced took 0.47 s for the fsync, 0.002-0.008 s with these kicks, the
 * writes no slower. Durability is the fsync's, as before: nothing is waited
 * for here and no error is taken from the file (its fsync reports it).
 */
import {sys} from './sys.js'

/** Bytes of a sequential run between two kicks. */
export const WRITEBACK_STEP = 8 * 1024 * 1024

export type StartWriteback = (fd: number, offset: number, length: number) => Promise<void>

export class Writeback {
  /** where the sequential run's bytes not yet kicked begin */
  private from = 0
  /** where the run ends: a write here continues it */
  private end = -1
  private job?: Promise<void>

  constructor(private readonly fd: number, private readonly step = WRITEBACK_STEP, private readonly start: StartWriteback = (fd, o, l) => sys.syncRangeJob(fd, o, l)) {}

  /** `n` bytes were written at `pos`. */
  wrote(pos: number, n: number): void {
    if (n <= 0) return
    if (pos !== this.end) this.from = pos // a new run (what the old one left is the fsync's)
    this.end = pos + n
    if (this.job || this.end - this.from < this.step) return // one kick at a time: the next takes what came meanwhile
    const [offset, length] = [this.from, this.end - this.from]
    this.from = this.end
    this.job = this.start(this.fd, offset, length).catch(() => {}).finally(() => {
      this.job = undefined
    })
  }

  /** Resolves when no kick runs (before the descriptor is closed). */
  async idle(): Promise<void> {
    while (this.job) await this.job
  }
}
