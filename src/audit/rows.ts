/**
 * The journal rows as verify's journal pass checks them: each row's salted
 * hash recomputed from its salt and record and compared with its hash
 * column, then the record parsed. A first verify reads every row (200,000
 * for 100,000 files), so rows come as strings (Journal.auditTextRows: no
 * buffer per row), the salt and record are hashed from one scratch buffer,
 * and one result object is reused.
 *
 * The text of a record is its bytes read as UTF-8. For bytes that are not
 * valid UTF-8 that reading is not exact (they become U+FFFD), so a row whose
 * text holds U+FFFD, whose hash does not match, or that does not fit the
 * scratch buffer is checked again from its bytes (Journal.auditRow): the
 * verdict is always the one the bytes give.
 */
import {hash as oneShot} from 'node:crypto'
import type {AuditRow, Journal} from '../volume/journal.js'

export interface CheckedRow {
  jseq: number
  /** the hash column (the ledger's payload); only valid until the next row (a scratch buffer) */
  hash: Buffer
  /** sha256(salt ‖ record) equals hash */
  ok: boolean
  /** sha256(salt ‖ record), hex (set when !ok) */
  actual: string
  /** the record as text (UTF-8) */
  text: string
}

const SCRATCH = 64 * 1024

export class RowReader {
  private readonly scratch = Buffer.allocUnsafe(SCRATCH)
  private readonly key = Buffer.alloc(32)
  private readonly row: CheckedRow = {jseq: 0, hash: this.key, ok: false, actual: '', text: ''}
  /** rows checked again from their bytes */
  exact = 0

  constructor(private readonly journal: Journal) {}

  /** Every row after afterJseq, in journal order. The object yielded is reused. */
  * after(afterJseq: number): Generator<CheckedRow> {
    if (this.journal.textEncoding() !== 'UTF-8') {
      for (const r of this.journal.auditRows(afterJseq)) yield this.fromBytes(r)
      return
    }

    const {scratch, row} = this
    for (const [jseq, hashHex, saltHex, text] of this.journal.auditTextRows(afterJseq)) {
      const saltLength = saltHex.length >> 1
      if (saltLength + text.length * 3 > SCRATCH || hashHex.length !== 64 || text.includes('\uFFFD')) {
        yield this.exactRow(jseq)
        continue
      }

      scratch.write(saltHex, 0, 'hex')
      const n = scratch.write(text, saltLength, 'utf8')
      if (oneShot('sha256', scratch.subarray(0, saltLength + n), 'hex') !== hashHex) {
        yield this.exactRow(jseq)
        continue
      }

      this.key.write(hashHex, 0, 'hex')
      row.jseq = jseq
      row.hash = this.key
      row.ok = true
      row.actual = hashHex
      row.text = text
      yield row
    }
  }

  /** A row of Journal.auditRows / auditRowByHash, checked from its bytes. */
  fromBytes(r: AuditRow): CheckedRow {
    const [jseq, hash, saltLength, salted] = r
    const actual = oneShot('sha256', salted, 'hex')
    const row = this.row
    row.jseq = jseq
    row.hash = hash
    row.ok = actual === hash.toString('hex')
    row.actual = actual
    row.text = salted.toString('utf8', saltLength)
    return row
  }

  private exactRow(jseq: number): CheckedRow {
    this.exact++
    const r = this.journal.auditRow(jseq)
    if (!r) throw new Error(`journal row ${jseq} vanished while verify read it`)
    return this.fromBytes(r)
  }
}
