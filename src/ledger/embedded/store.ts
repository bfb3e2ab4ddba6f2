/**
 * The embedded ledger's SQLite file: schema, synchronous reads and the one
 * write transaction per block. Used by the writer (inline or in a worker
 * thread) and by read-only openers. Everything here is synchronous
 * (better-sqlite3); callers keep each call short.
 *
 * Schema (application_id 'PCLG', user_version 2; version 1 had no txseal, and
 * a writer's open upgrades it):
 *   meta(key, value)     ledgerId, format, genesis, and indexedTo (see txindex.ts)
 *   blocks(epoch PK, prev_hash, time, merkle_root, producer, signature, hash,
 *          ntx, cp_signature, txids, payloads)
 *     txids    = the block's txids, 32 raw bytes each, concatenated in order
 *     payloads = for each tx: 4-byte big-endian length, then the payload
 *   txindex(txid PK, epoch) WITHOUT ROWID   answers "is this payload on the ledger?"
 *   txindex_<gen>, txseal(gen PK, entries, bloom)   the index's sealed generations (txgens.ts)
 * A block's transactions live in its own row (one read per block; one index
 * row per tx is the only per-transaction write, made behind the block in key
 * order: txindex.ts).
 */
import Database from 'better-sqlite3'
import {statSync} from 'node:fs'
import type {Identity} from '../../crypto/sign.js'
import {CorruptStateError, PacioError} from '../../errors.js'
import {merkleRoot32} from '../../crypto/merkle.js'
import {sha256All} from '../../crypto/native.js'
import {genesisBlock, sealHeader, verifyBlock} from '../block.js'
import {signCheckpoint} from '../checkpoint.js'
import type {Block, Checkpoint, Tx} from '../types.js'
import {packPayloads, unpackPayloads} from '../pack.js'
import {DeferredTxIndex, type IndexWrite} from './txindex.js'
import {SEAL_SCHEMA, countIndexed} from './txgens.js'

export const APPLICATION_ID = 0x50434c47 // 'PCLG'
export const FORMAT_VERSION = 2
/** Versions this build opens: 1 lacks the sealed generations' table, which a writer adds. */
const READABLE_VERSIONS = [1, 2]
export const FORMAT_NAME = 'paciofs-ledger'

/** How many of the newest blocks open() re-validates; validateAll() checks every block. */
export const DEFAULT_TAIL_BLOCKS = 32

const WRITER_CACHE_KIB = 8 * 1024 // 8 MiB: the writer appends; a large cache only grows the mount's RSS
/** A reader (verify, log, a follower) mostly streams the blocks once: better-sqlite3's 16 MiB cache only holds what the OS's page cache holds too */
const READER_CACHE_KIB = 2 * 1024

export interface HeadInfo {
  epoch: number
  hash: string
  time: number
}

export interface BlockRow {
  epoch: number
  prev_hash: string
  time: number
  merkle_root: string
  producer: string
  signature: string
  hash: string
  ntx: number
  cp_signature: string
  txids: Buffer
  payloads: Buffer
}

/** The outcome of committing one batch. Arrays are per input payload. */
export interface CommitOutcome {
  txids: string[]
  epochs: number[]
  /** the new block's header (no txs) or null if every payload was already on the ledger */
  block: Omit<Block, 'txs'> | null
  /** indexes into the batch of the payloads that went into the new block, in block order */
  included: number[]
  checkpoint: Checkpoint | null
}

/**
 * What LedgerStore.commit did, in a form that is cheap to send between
 * threads: no per-payload strings (the caller has the txids already), and
 * per-payload detail only for the payloads that were on the ledger before.
 */
export interface StoredBatch {
  /** the new block's header (no txs) or null if every payload was already on the ledger */
  block: Omit<Block, 'txs'> | null
  checkpoint: Checkpoint | null
  /** [index, epoch] pairs, flattened, of the payloads that were on the ledger already (or earlier in the batch); the others are in the block */
  prior: number[]
}

/** The txids of a batch, hashed in one native call: 32 raw bytes per payload, concatenated. */
export function batchTxids(payloads: readonly Buffer[]): Buffer {
  return sha256All(payloads)
}

/** The full per-payload outcome of a batch of n payloads, from its txids (batchTxids) and what the store did. */
export function expandOutcome(stored: StoredBatch, ids: Buffer, n: number): CommitOutcome {
  const txids: string[] = new Array(n)
  for (let i = 0; i < n; i++) txids[i] = ids.toString('hex', i * 32, i * 32 + 32)
  const epochs: number[] = new Array(n)
  const {block, checkpoint, prior} = stored
  if (block) epochs.fill(block.epoch)
  for (let k = 0; k < prior.length; k += 2) epochs[prior[k]] = prior[k + 1]
  let included: number[]
  if (!block) included = []
  else if (prior.length === 0) included = Array.from({length: n}, (_, i) => i)
  else {
    const before = new Set<number>()
    for (let k = 0; k < prior.length; k += 2) before.add(prior[k])
    included = []
    for (let i = 0; i < n; i++) if (!before.has(i)) included.push(i)
  }
  return {txids, epochs, block, included, checkpoint}
}

export const SCHEMA = `
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE blocks(
  epoch INTEGER PRIMARY KEY, prev_hash TEXT NOT NULL, time INTEGER NOT NULL,
  merkle_root TEXT NOT NULL, producer TEXT NOT NULL, signature TEXT NOT NULL,
  hash TEXT NOT NULL, ntx INTEGER NOT NULL, cp_signature TEXT NOT NULL,
  txids BLOB NOT NULL, payloads BLOB NOT NULL);
CREATE TABLE txindex(txid BLOB PRIMARY KEY, epoch INTEGER NOT NULL) WITHOUT ROWID;
${SEAL_SCHEMA};
`
export const INSERT_BLOCK =
  'INSERT INTO blocks(epoch, prev_hash, time, merkle_root, producer, signature, hash, ntx, cp_signature, txids, payloads) VALUES (?,?,?,?,?,?,?,?,?,?,?)'

function sqliteCode(error: unknown): string {
  return (error as {code?: string})?.code ?? ''
}

/** Map a SQLite failure to a CorruptStateError naming the file (and epoch if known). */
function corruption(file: string, error: unknown, epoch?: number): PacioError {
  if (error instanceof PacioError) return error
  const code = sqliteCode(error)
  const msg = (error as Error)?.message ?? String(error)
  if (code === 'SQLITE_NOTADB') return new CorruptStateError(file, 'not a SQLite database (garbage or encrypted file)', epoch)
  if (code.startsWith('SQLITE_CORRUPT')) return new CorruptStateError(file, `database is damaged (truncated or overwritten): ${msg}`, epoch)
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') return new PacioError('EBUSY', `${file}: ledger is locked by another process: ${msg}`, {cause: error})
  return new PacioError('ELEDGER', `${file}: ${msg}`, {cause: error, details: {file, epoch}})
}

export class LedgerStore {
  readonly file: string
  readonly ledgerId: string
  readonly readonly: boolean
  private readonly db: Database.Database
  private head_: HeadInfo
  private readonly stmt: {
    block: Database.Statement<[number], BlockRow>
    head: Database.Statement<[], {epoch: number; hash: string; time: number}>
    insBlock?: Database.Statement
  }
  /** the writer's txid index, written behind the blocks (txindex.ts) */
  private index?: DeferredTxIndex

  private constructor(file: string, db: Database.Database, readonly: boolean) {
    this.file = file
    this.db = db
    this.readonly = readonly
    this.ledgerId = this.checkFormat()
    this.stmt = {
      block: db.prepare('SELECT * FROM blocks WHERE epoch = ?'),
      head: db.prepare('SELECT epoch, hash, time FROM blocks ORDER BY epoch DESC LIMIT 1'),
    }
    if (!readonly) {
      this.stmt.insBlock = db.prepare(INSERT_BLOCK)
    }
    this.head_ = this.loadHead()
  }

  /**
   * Create a new ledger file, or open an existing one for writing. Refuses a
   * file that is not a PacioFS ledger (EFOREIGN), belongs to another ledgerId
   * (EFOREIGN), or is damaged (ECORRUPT, naming file and epoch). Validates
   * the genesis block and the newest `tailBlocks` blocks; older history is
   * checked by validateAll(), because re-validating everything at every open
   * would make opening cost grow with the volume's whole history.
   */
  /**
   * `syncAfter`: commits write the WAL without an fsync of their own
   * (synchronous=NORMAL); the caller must fdatasync the WAL (walFile) before
   * it reports a commit as done (the worker writer does, see
   * writer-worker.ts). Creating the file and re-indexing at open stay FULL.
   * `indexBudget`: how many new txids may wait in memory for the index
   * (txindex.ts; tests set it low). `sealAt`: entries per generation of the
   * index (txgens.ts; tests set it low).
   */
  static openWriter(opts: {
    file: string
    ledgerId: string
    identity: Identity
    tailBlocks?: number
    now?: number
    syncAfter?: boolean
    indexBudget?: number
    sealAt?: number
  }): LedgerStore {
    const {file, ledgerId, identity} = opts
    let size = -1
    try {
      size = statSync(file).size
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw corruption(file, error)
    }
    if (size === 0) throw new CorruptStateError(file, 'empty file where a ledger database was expected (truncated?)')
    let db: Database.Database
    try {
      db = new Database(file, {fileMustExist: size > 0})
    } catch (error) {
      throw corruption(file, error)
    }
    try {
      if (size < 0) {
        db.pragma('journal_mode = WAL')
        db.pragma('synchronous = FULL')
        db.transaction(() => {
          db.pragma(`application_id = ${APPLICATION_ID}`)
          db.pragma(`user_version = ${FORMAT_VERSION}`)
          db.exec(SCHEMA)
          const g = genesisBlock(ledgerId, identity, opts.now ?? Date.now())
          const cp = signCheckpoint(ledgerId, g, identity)
          const meta = db.prepare('INSERT INTO meta(key, value) VALUES (?, ?)')
          meta.run('format', FORMAT_NAME)
          meta.run('ledgerId', ledgerId)
          meta.run('genesis', g.hash)
          db.prepare(INSERT_BLOCK).run(0, g.prevHash, g.time, g.merkleRoot, g.producer, g.signature, g.hash, 0, cp.signature, Buffer.alloc(0), Buffer.alloc(0))
        })()
      } else {
        LedgerStore.checkHeader(file, db) // before anything writes to the file
        db.pragma('journal_mode = WAL')
        db.pragma('synchronous = FULL')
        if (db.pragma('user_version', {simple: true}) !== FORMAT_VERSION) {
          db.transaction(() => {
            db.exec(SEAL_SCHEMA)
            db.pragma(`user_version = ${FORMAT_VERSION}`)
          })()
        }
      }
      // The txid index takes random inserts; keep its pages in memory.
      db.pragma(`cache_size = -${WRITER_CACHE_KIB}`)
      const store = new LedgerStore(file, db, false)
      if (store.ledgerId !== ledgerId) {
        throw new PacioError('EFOREIGN', `${file}: ledger belongs to volume ${store.ledgerId}, not ${ledgerId}`, {
          details: {file, expected: ledgerId, found: store.ledgerId},
          suggestion: 'point the volume at its own state directory',
        })
      }
      store.validateTail(opts.tailBlocks ?? DEFAULT_TAIL_BLOCKS)
      const head = store.head_.epoch
      store.index = new DeferredTxIndex(db, DeferredTxIndex.readMark(db, head), opts.indexBudget, opts.sealAt)
      store.index.catchUp(head, (epoch) => {
        const row = store.stmt.block.get(epoch)
        if (!row || !Buffer.isBuffer(row.txids)) throw new CorruptStateError(file, 'block missing or damaged while re-indexing its txids', epoch)
        return row.txids
      })
      if (opts.syncAfter) db.pragma('synchronous = NORMAL')
      return store
    } catch (error) {
      db.close()
      throw corruption(file, error)
    }
  }

  /** Open for reading only; never writes to the file or creates files beside a cleanly closed ledger. */
  static openReader(opts: {file: string; ledgerId?: string; tailBlocks?: number; skipValidation?: boolean}): LedgerStore {
    const {file} = opts
    let db: Database.Database
    try {
      const size = statSync(file).size
      if (size === 0) throw new CorruptStateError(file, 'empty file where a ledger database was expected (truncated?)')
      db = new Database(file, {readonly: true, fileMustExist: true})
      db.pragma(`cache_size = -${READER_CACHE_KIB}`)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new PacioError('ENOVOLUME', `${file}: no ledger here`, {details: {file}})
      throw corruption(file, error)
    }
    try {
      LedgerStore.checkHeader(file, db)
      const store = new LedgerStore(file, db, true)
      if (opts.ledgerId !== undefined && store.ledgerId !== opts.ledgerId) {
        throw new PacioError('EFOREIGN', `${file}: ledger belongs to volume ${store.ledgerId}, not ${opts.ledgerId}`, {
          details: {file, expected: opts.ledgerId, found: store.ledgerId},
        })
      }
      if (!opts.skipValidation) store.validateTail(opts.tailBlocks ?? DEFAULT_TAIL_BLOCKS)
      return store
    } catch (error) {
      db.close()
      throw corruption(file, error)
    }
  }

  private static checkHeader(file: string, db: Database.Database): void {
    const appId = db.pragma('application_id', {simple: true}) as number
    if (appId !== APPLICATION_ID) {
      throw new PacioError('EFOREIGN', `${file}: SQLite database of another application (application_id ${appId}), not a PacioFS ledger`, {details: {file}})
    }
    const version = db.pragma('user_version', {simple: true}) as number
    if (!READABLE_VERSIONS.includes(version)) {
      throw new PacioError('EFOREIGN', `${file}: ledger format version ${version}, this build reads versions ${READABLE_VERSIONS.join(' and ')}`, {details: {file}})
    }
  }

  private checkFormat(): string {
    let rows: Array<{key: string; value: string}>
    try {
      rows = this.db.prepare('SELECT key, value FROM meta').all() as Array<{key: string; value: string}>
    } catch (error) {
      throw corruption(this.file, error)
    }
    const meta = new Map(rows.map((r) => [r.key, r.value]))
    if (meta.get('format') !== FORMAT_NAME) throw new CorruptStateError(this.file, `meta.format is ${JSON.stringify(meta.get('format'))}`)
    const id = meta.get('ledgerId')
    if (!id) throw new CorruptStateError(this.file, 'meta.ledgerId is missing')
    if (!meta.get('genesis')) throw new CorruptStateError(this.file, 'meta.genesis is missing')
    return id
  }

  private loadHead(): HeadInfo {
    const row = this.stmt.head.get()
    if (!row) throw new CorruptStateError(this.file, 'no blocks, not even genesis', 0)
    return {epoch: row.epoch, hash: row.hash, time: row.time}
  }

  get head(): HeadInfo {
    return this.head_
  }

  /** Re-read the head from the file (for readers following another process's writes). */
  refreshHead(): HeadInfo {
    this.head_ = this.loadHead()
    return this.head_
  }

  private rowToBlock(row: BlockRow): Block {
    if (!Buffer.isBuffer(row.payloads) || !Buffer.isBuffer(row.txids)) {
      throw new CorruptStateError(this.file, 'block columns are not binary (overwritten outside PacioFS)', row.epoch)
    }

    const payloads = unpackPayloads(row.payloads, row.ntx)
    if (!payloads || row.txids.length !== 32 * row.ntx) {
      throw new CorruptStateError(this.file, `block should hold ${row.ntx} transactions; its txid or payload column does not`, row.epoch)
    }
    const txs: Tx[] = payloads.map((payload, i) => ({txid: row.txids.toString('hex', 32 * i, 32 * i + 32), payload}))
    return {
      epoch: row.epoch,
      prevHash: row.prev_hash,
      time: row.time,
      merkleRoot: row.merkle_root,
      producer: row.producer,
      signature: row.signature,
      hash: row.hash,
      txs,
    }
  }

  /** One block with its transactions, or undefined past the head. Throws CorruptStateError on damage. */
  readBlock(epoch: number): Block | undefined {
    try {
      const row = this.stmt.block.get(epoch)
      return row ? this.rowToBlock(row) : undefined
    } catch (error) {
      throw corruption(this.file, error, epoch)
    }
  }

  /** The signed checkpoint for a block (the head by default). */
  checkpoint(epoch = this.head_.epoch): Checkpoint {
    const row = this.stmt.block.get(epoch)
    if (!row) throw new PacioError('EINPUT', `${this.file}: no block at epoch ${epoch}`)
    return {ledgerId: this.ledgerId, epoch: row.epoch, headHash: row.hash, time: row.time, producer: row.producer, signature: row.cp_signature}
  }

  /** Check one stored block against its predecessor; throws CorruptStateError naming file and epoch. */
  private checkBlock(b: Block, prev: {epoch: number; hash: string} | null, genesisHash?: string): void {
    const problem = verifyBlock(this.ledgerId, b, prev)
    if (problem) throw new CorruptStateError(this.file, `block ${problem.kind} check failed: ${problem.detail}`, problem.epoch)
    if (genesisHash !== undefined && b.hash !== genesisHash) throw new CorruptStateError(this.file, 'genesis block does not match meta.genesis', 0)
  }

  /** Validate genesis and the newest `n` blocks (links, hashes, Merkle roots, txids, signatures). */
  validateTail(n: number): void {
    const genesis = this.readBlock(0)
    if (!genesis) throw new CorruptStateError(this.file, 'genesis block missing', 0)
    const meta = this.db.prepare("SELECT value FROM meta WHERE key = 'genesis'").get() as {value: string}
    this.checkBlock(genesis, null, meta.value)
    const head = this.head_.epoch
    const from = Math.max(1, head - n + 1)
    let prev = from === 1 ? {epoch: 0, hash: genesis.hash} : null
    if (prev === null) {
      const row = this.stmt.block.get(from - 1)
      if (!row) throw new CorruptStateError(this.file, `block missing`, from - 1)
      prev = {epoch: row.epoch, hash: row.hash}
    }
    this.validateRange(from, head, prev)
  }

  /** Validate blocks from..to, the first one linked to `prev`; returns the last block's link. */
  validateRange(from: number, to: number, prev: {epoch: number; hash: string}, onBlock?: (b: Block) => void): {epoch: number; hash: string} {
    for (let e = from; e <= to; e++) {
      const b = this.readBlock(e)
      if (!b) throw new CorruptStateError(this.file, 'block missing', e)
      this.checkBlock(b, prev)
      onBlock?.(b)
      prev = {epoch: b.epoch, hash: b.hash}
    }
    return prev
  }

  /** SQLite's own page-level integrity check (reads the whole file). */
  integrityCheck(): void {
    let check: string
    try {
      check = this.db.pragma('integrity_check', {simple: true}) as string
    } catch (error) {
      throw corruption(this.file, error)
    }
    if (check !== 'ok') throw new CorruptStateError(this.file, `SQLite integrity check: ${check}`)
    // The writer indexes txids behind the blocks (txindex.ts): blocks after
    // meta.indexedTo may be missing from the index (a writer that crashed),
    // and are put there when it is opened for writing again.
    // One read transaction: a writer may commit meanwhile.
    const {head, mark, indexed, stored, due, problem} = this.db.transaction(() => {
      const head = this.loadHead().epoch // this connection may be a reader behind the writer
      const mark = DeferredTxIndex.readMark(this.db, head)
      const {rows: indexed, problem} = countIndexed(this.db)
      const stored = (this.db.prepare('SELECT total(ntx) AS n FROM blocks').get() as {n: number}).n
      const due = mark === head ? stored : (this.db.prepare('SELECT total(ntx) AS n FROM blocks WHERE epoch <= ?').get(mark) as {n: number}).n
      return {head, mark, indexed, stored, due, problem}
    })()
    if (problem) throw new CorruptStateError(this.file, problem)
    if (mark < 0) throw new CorruptStateError(this.file, 'meta.indexedTo is not an epoch of this ledger')
    if (indexed < due || indexed > stored) {
      throw new CorruptStateError(this.file, `txid index holds ${indexed} entries, blocks hold ${stored} transactions${mark === head ? '' : ` (${due} of them up to epoch ${mark}, which must be indexed)`}`)
    }
  }

  /** The write-ahead log that commits append to (for a caller that syncs it itself: openWriter's syncAfter). */
  get walFile(): string {
    return `${this.file}-wal`
  }

  /**
   * Commit one batch as one block in one transaction (fsync'ed: WAL with
   * synchronous=FULL, unless the store was opened with syncAfter). `ids` are
   * the payloads' txids (batchTxids; a caller on another thread hashes them
   * there). Payloads already on the ledger, or repeated within the batch, are
   * not added again and report their existing epoch (StoredBatch.prior). The
   * duplicate check (txids waiting for the index, then the index) runs inside
   * the transaction, and the block is sealed there once its members are
   * known; the block's txids go into the index later (txindex.ts).
   */
  commit(payloads: Buffer[], identity: Identity, now: number, ids: Buffer = batchTxids(payloads)): StoredBatch {
    if (this.readonly) throw new PacioError('EINTERNAL', 'commit on a read-only ledger store')
    const n = payloads.length
    if (ids.length !== n * 32) throw new PacioError('EINTERNAL', `commit: ${ids.length} bytes of txids for ${n} payloads`)
    const keys: string[] = new Array(n)
    for (let i = 0; i < n; i++) keys[i] = ids.toString('latin1', i * 32, i * 32 + 32)
    const prior: number[] = []
    const included: number[] = []
    const epoch = this.head_.epoch + 1
    const index = this.index!
    let sealed: {block: Omit<Block, 'txs'>; cp: Checkpoint} | null = null
    let written: IndexWrite | undefined
    const txidOf = (i: number) => ids.subarray(i * 32, i * 32 + 32)
    try {
      this.db.transaction(() => {
        const before = index.priorEpochs(ids, keys)
        const inBatch = new Set<string>()
        for (let i = 0; i < n; i++) {
          const e = before[i] ?? (inBatch.has(keys[i]) ? epoch : undefined)
          if (e === undefined) {
            inBatch.add(keys[i])
            included.push(i)
          } else {
            prior.push(i, e)
          }
        }
        if (included.length === 0) return
        written = index.writeNext(this.head_.epoch, included.length)
        const members = included.length === n ? ids : Buffer.concat(included.map(txidOf))
        const block = sealHeader(this.ledgerId, identity, {
          epoch,
          prevHash: this.head_.hash,
          time: Math.max(now, this.head_.time),
          ntx: included.length,
          merkleRoot: merkleRoot32(members, included.length).toString('hex'),
        })
        const cp = signCheckpoint(this.ledgerId, block, identity)
        this.stmt.insBlock!.run(
          epoch,
          block.prevHash,
          block.time,
          block.merkleRoot,
          block.producer,
          block.signature,
          block.hash,
          included.length,
          cp.signature,
          members,
          packPayloads(included.length === n ? payloads : included.map((i) => payloads[i])),
        )
        sealed = {block, cp}
      })()
    } catch (error) {
      throw corruption(this.file, error, epoch)
    }
    if (sealed === null) return {block: null, checkpoint: null, prior}
    const {block, cp} = sealed as {block: Omit<Block, 'txs'>; cp: Checkpoint}
    this.head_ = {epoch, hash: block.hash, time: block.time}
    index.committed(
      written!,
      epoch,
      included.length === n ? keys : included.map((i) => keys[i]),
    )
    return {block, checkpoint: cp, prior}
  }

  /**
   * Close. A writer folds the WAL back into the file and leaves rollback-journal
   * mode, so that a later read-only open of the closed ledger creates no -wal or
   * -shm files beside it (best effort: skipped while other connections are open).
   */
  close(): void {
    if (!this.db.open) return
    if (!this.readonly) {
      try {
        this.index?.writeAll(this.head_.epoch)
      } catch {
        // left for the next writer's open to re-index (meta.indexedTo says from where)
      }
      try {
        this.db.pragma('wal_checkpoint(TRUNCATE)')
        this.db.pragma('journal_mode = DELETE')
      } catch {
        // another process still reads the file; WAL stays, which is fine
      }
    }
    this.db.close()
  }
}
