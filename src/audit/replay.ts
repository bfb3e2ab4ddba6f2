import type {FsRecord} from '../volume/types.js'
import type {ExpectedTree} from './expected.js'
import type {RecordRef} from './types.js'

/** Applies records to the tree in ledger order while they come in journal order (the same, but for a few). */
export class Replay {
  private next = 0
  private readonly held = new Map<number, {record: FsRecord; ref: RecordRef}>()
  private readonly skipped = new Set<number>()
  applied = 0

  constructor(private readonly tree: ExpectedTree) {}

  add(order: number, record: FsRecord, ref: RecordRef): void {
    if (order !== this.next) {
      this.held.set(order, {record, ref})
      return
    }

    this.tree.apply(record, ref)
    this.applied++
    this.advance()
  }

  /** A record at this position will never come (tampered). */
  skip(order: number): void {
    this.skipped.add(order)
    if (order === this.next) this.advance()
  }

  private advance(): void {
    for (;;) {
      this.next++
      if (this.skipped.delete(this.next)) continue
      const h = this.held.get(this.next)
      if (!h) return
      this.held.delete(this.next)
      this.tree.apply(h.record, h.ref)
      this.applied++
    }
  }

  /** Whatever waited behind a record that never came (one missing from the journal), in order. */
  finish(): void {
    for (const order of [...this.held.keys()].sort((a, b) => a - b)) {
      const h = this.held.get(order)!
      this.tree.apply(h.record, h.ref)
      this.applied++
    }

    this.held.clear()
  }
}
