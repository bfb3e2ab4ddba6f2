/**
 * A mirror of another server's embedded ledger: the same SQLite format as
 * store.ts, holding the producer's blocks byte for byte (its signatures, its
 * checkpoint signatures), so that every reader of a ledger — log, verify,
 * history — works on a replica unchanged. Nothing is signed here: a block is
 * only stored once it checks out (shape, txids, Merkle root, hash, the pinned
 * producer's signature, the link to the head, the checkpoint signature).
 * Each append is one fsync'ed transaction (WAL, synchronous=FULL).
 */
import Database from 'better-sqlite3'
import fs from 'node:fs'
import {CorruptStateError, PacioError} from '../../errors.js'
import {verifyBlock} from '../block.js'
import {verifyCheckpoint} from '../checkpoint.js'
import {packPayloads} from '../pack.js'
import type {Block} from '../types.js'
import {APPLICATION_ID, FORMAT_NAME, FORMAT_VERSION, INSERT_BLOCK, SCHEMA} from './store.js'

export class BlockRejected extends PacioError {
  constructor(readonly epoch: number, readonly kind: string, detail: string) {
    super('ETAMPER', `block ${epoch}: ${kind}: ${detail}`, {details: {epoch, kind}})
    this.name = 'BlockRejected'
  }
}

export class MirrorStore {
  private head_: {epoch: number; hash: string; time: number}
  private readonly ins: Database.Statement
  private readonly insIndex: Database.Statement<[Buffer, number]>

  private constructor(readonly file: string, private readonly db: Database.Database, readonly ledgerId: string, readonly producer: string) {
    const row = db.prepare('SELECT epoch, hash, time FROM blocks ORDER BY epoch DESC LIMIT 1').get() as {epoch: number; hash: string; time: number} | undefined
    if (!row) throw new CorruptStateError(file, 'mirror holds no genesis block', 0)
    this.head_ = row
    this.ins = db.prepare(INSERT_BLOCK)
    this.insIndex = db.prepare('INSERT INTO txindex(txid, epoch) VALUES (?, ?) ON CONFLICT DO NOTHING')
  }

  /** Opens an existing mirror (or creates one from a checked genesis block and its checkpoint signature). */
  static open(file: string, ledgerId: string, genesis?: {block: Block; cpSignature: string}): MirrorStore {
    const exists = fs.existsSync(file)
    if (!exists && !genesis) throw new PacioError('ENOVOLUME', `${file}: no ledger mirror here yet`)
    const db = new Database(file)
    try {
      db.pragma('journal_mode = WAL')
      db.pragma('synchronous = FULL')
      if (!exists) {
        const g = genesis!
        checkBlock(ledgerId, g.block, g.block.producer, null, g.cpSignature)
        db.transaction(() => {
          db.pragma(`application_id = ${APPLICATION_ID}`)
          db.pragma(`user_version = ${FORMAT_VERSION}`)
          db.exec(SCHEMA)
          const meta = db.prepare('INSERT INTO meta(key, value) VALUES (?, ?)')
          meta.run('format', FORMAT_NAME)
          meta.run('ledgerId', ledgerId)
          meta.run('genesis', g.block.hash)
          meta.run('mirrorOf', g.block.producer)
          db.prepare(INSERT_BLOCK).run(0, g.block.prevHash, g.block.time, g.block.merkleRoot, g.block.producer, g.block.signature, g.block.hash, 0, g.cpSignature,
            Buffer.alloc(0), Buffer.alloc(0))
        })()
      }

      const meta = new Map((db.prepare('SELECT key, value FROM meta').all() as Array<{key: string; value: string}>).map(r => [r.key, r.value]))
      if (meta.get('ledgerId') !== ledgerId) throw new PacioError('EFOREIGN', `${file}: ledger of volume ${meta.get('ledgerId')}, not ${ledgerId}`)
      const producer = meta.get('mirrorOf') ?? (db.prepare('SELECT producer FROM blocks WHERE epoch = 0').get() as {producer: string}).producer
      return new MirrorStore(file, db, ledgerId, producer)
    } catch (error) {
      db.close()
      throw error
    }
  }

  get head(): {epoch: number; hash: string; time: number} {
    return this.head_
  }

  /** Checks a block against the head and stores it; throws BlockRejected (nothing stored) if it does not check out. */
  append(b: Block, cpSignature: string): void {
    this.appendMany([{block: b, cpSignature}])
  }

  /** Checks blocks that follow each other and the head, and stores them in one transaction (all or, on BlockRejected, none). */
  appendMany(items: Array<{block: Block; cpSignature: string}>): void {
    let head = this.head_
    for (const {block: b, cpSignature} of items) {
      checkBlock(this.ledgerId, b, this.producer, head, cpSignature)
      head = {epoch: b.epoch, hash: b.hash, time: b.time}
    }

    this.db.transaction(() => {
      for (const {block: b, cpSignature} of items) {
        const txids = b.txs.map(t => Buffer.from(t.txid, 'hex'))
        this.ins.run(b.epoch, b.prevHash, b.time, b.merkleRoot, b.producer, b.signature, b.hash, b.txs.length, cpSignature,
          Buffer.concat(txids), packPayloads(b.txs.map(t => t.payload)))
        for (const t of txids) this.insIndex.run(t, b.epoch)
      }
    })()
    this.head_ = head
  }

  close(): void {
    if (!this.db.open) return
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)')
    } catch { /* a reader holds it */ }
    this.db.close()
  }
}

/** The checks a mirrored block must pass; throws BlockRejected. */
export function checkBlock(ledgerId: string, b: Block, producer: string, prev: {epoch: number; hash: string} | null, cpSignature: string): void {
  const problem = verifyBlock(ledgerId, b, prev)
  if (problem) throw new BlockRejected(b.epoch, problem.kind, problem.detail)
  if (b.producer !== producer) throw new BlockRejected(b.epoch, 'producer', `signed by ${b.producer.slice(0, 16)}…, the ledger's producer is ${producer.slice(0, 16)}…`)
  if (prev === null && b.epoch !== 0) throw new BlockRejected(b.epoch, 'link', 'a mirror starts at genesis')
  const cp = {ledgerId, epoch: b.epoch, headHash: b.hash, time: b.time, producer: b.producer, signature: cpSignature}
  if (!verifyCheckpoint(cp, producer)) throw new BlockRejected(b.epoch, 'checkpoint-signature', 'its checkpoint signature does not verify')
}
