/**
 * In-memory Ledger with the embedded driver's semantics (same signed block
 * format, group commit, idempotent append, follow, checkpoints) plus fault
 * hooks that play a hostile ledger operator for the broadcast tests: they
 * rewrite history and re-seal every block after the change with the ledger's
 * key, so the ledger itself still looks sound and only the layer above can
 * notice.
 */
import {PacioError} from '../../src/errors.js'
import {generateIdentity, type Identity} from '../../src/crypto/sign.js'
import {genesisBlock, sealBlock, txidOf} from '../../src/ledger/block.js'
import {signCheckpoint} from '../../src/ledger/checkpoint.js'
import type {Block, Checkpoint, Committed, Ledger, Tx} from '../../src/ledger/types.js'

export interface MemoryLedgerOptions {
  ledgerId?: string
  identity?: Identity
  /** ms to collect appends into one block (0 = appends in the same tick) */
  groupWindowMs?: number
}

interface Pending {
  payloads: Buffer[]
  resolve: (r: Committed[]) => void
  reject: (e: Error) => void
}

export class MemoryLedger implements Ledger {
  readonly driver = 'memory'
  readonly ledgerId: string
  readonly identity: Identity
  private blocks: Block[]
  private index = new Map<string, number>()
  private pending: Pending[] = []
  private timer?: NodeJS.Timeout | NodeJS.Immediate
  private followers = new Set<{next: number; onBlock: (b: Block) => void; stopped: boolean}>()
  private failures: Error[] = []
  private held = false
  private closed = false
  private readonly windowMs: number
  /** number of append() calls seen (including failed ones) */
  appendCalls = 0

  constructor(opts: MemoryLedgerOptions = {}) {
    this.ledgerId = opts.ledgerId ?? 'memory-ledger'
    this.identity = opts.identity ?? generateIdentity()
    this.windowMs = opts.groupWindowMs ?? 0
    this.blocks = [genesisBlock(this.ledgerId, this.identity, Date.now())]
  }

  append(payloads: Buffer[]): Promise<Committed[]> {
    this.appendCalls++
    if (this.closed) return Promise.reject(new PacioError('ELEDGER', 'memory ledger is closed'))
    const failure = this.failures.shift()
    if (failure) return Promise.reject(failure)
    if (payloads.length === 0) return Promise.resolve([])
    return new Promise((resolve, reject) => {
      this.pending.push({payloads: payloads.map((p) => Buffer.from(p)), resolve, reject})
      this.schedule()
    })
  }

  private schedule(): void {
    if (this.timer || this.held) return
    const run = () => {
      this.timer = undefined
      this.commit()
    }
    this.timer = this.windowMs > 0 ? setTimeout(run, this.windowMs) : setImmediate(run)
  }

  private commit(): void {
    const batch = this.pending.splice(0)
    if (batch.length === 0) return
    const epoch = this.blocks.length
    const txs: Tx[] = []
    const results = batch.map((call) =>
      call.payloads.map((payload) => {
        const txid = txidOf(payload)
        const existing = this.index.get(txid)
        if (existing !== undefined) return {txid, epoch: existing}
        this.index.set(txid, epoch)
        txs.push({txid, payload})
        return {txid, epoch}
      }),
    )
    if (txs.length > 0) {
      const prev = this.blocks[epoch - 1]
      this.blocks.push(sealBlock(this.ledgerId, this.identity, {epoch, prevHash: prev.hash, time: Math.max(Date.now(), prev.time), txs}))
    }
    batch.forEach((call, i) => call.resolve(results[i]))
    if (txs.length > 0) for (const f of this.followers) this.pump(f)
  }

  async *read(fromEpoch: number, toEpoch?: number): AsyncIterable<Block> {
    const last = Math.min(toEpoch ?? Number.MAX_SAFE_INTEGER, this.blocks.length - 1)
    for (let e = Math.max(0, fromEpoch); e <= last; e++) yield this.blocks[e]
  }

  follow(fromEpoch: number, onBlock: (b: Block) => void): () => void {
    const f = {next: Math.max(0, fromEpoch), onBlock, stopped: false}
    this.followers.add(f)
    setImmediate(() => this.pump(f))
    return () => {
      f.stopped = true
      this.followers.delete(f)
    }
  }

  private pump(f: {next: number; onBlock: (b: Block) => void; stopped: boolean}): void {
    while (!f.stopped && f.next < this.blocks.length) f.onBlock(this.blocks[f.next++])
  }

  async head(): Promise<Checkpoint> {
    return signCheckpoint(this.ledgerId, this.blocks.at(-1)!, this.identity)
  }

  async close(): Promise<void> {
    if (this.held) this.release()
    this.commit()
    this.closed = true
    this.followers.clear()
  }

  get headEpoch(): number {
    return this.blocks.length - 1
  }

  /** Every transaction in ledger order, with its epoch. */
  allTxs(): Array<Tx & {epoch: number}> {
    return this.blocks.flatMap((b) => b.txs.map((t) => ({...t, epoch: b.epoch})))
  }

  // ---- fault hooks ------------------------------------------------------

  /** The next `n` append() calls reject with `error` (nothing is committed). */
  failNext(n: number, error: Error = new PacioError('ELEDGER', 'injected ledger failure')): void {
    for (let i = 0; i < n; i++) this.failures.push(error)
  }

  /** Hold commits (appends stay pending) until release(). */
  hold(): void {
    this.held = true
  }

  release(): void {
    this.held = false
    if (this.pending.length > 0) this.schedule()
  }

  private locate(txid: string): {epoch: number; index: number} {
    for (const b of this.blocks) {
      const index = b.txs.findIndex((t) => t.txid === txid)
      if (index >= 0) return {epoch: b.epoch, index}
    }
    throw new Error(`no tx ${txid} on the memory ledger`)
  }

  /** Re-seal blocks from `epoch` on: new Merkle roots, links, hashes and signatures. */
  private reseal(epoch: number): void {
    for (let e = Math.max(1, epoch); e < this.blocks.length; e++) {
      const b = this.blocks[e]
      this.blocks[e] = sealBlock(this.ledgerId, this.identity, {epoch: e, prevHash: this.blocks[e - 1].hash, time: b.time, txs: b.txs})
    }
    this.index = new Map()
    for (const b of this.blocks) for (const t of b.txs) if (!this.index.has(t.txid)) this.index.set(t.txid, b.epoch)
  }

  /** Remove a transaction from history. */
  drop(txid: string): void {
    const at = this.locate(txid)
    this.blocks[at.epoch].txs.splice(at.index, 1)
    this.reseal(at.epoch)
  }

  /** Replace a transaction's payload in place; returns the new txid. */
  alter(txid: string, change: (payload: Buffer) => Buffer): string {
    const at = this.locate(txid)
    const payload = change(Buffer.from(this.blocks[at.epoch].txs[at.index].payload))
    const tx = {txid: txidOf(payload), payload}
    this.blocks[at.epoch].txs[at.index] = tx
    this.reseal(at.epoch)
    return tx.txid
  }

  /** Swap two transactions' places in history. */
  swap(txidA: string, txidB: string): void {
    const a = this.locate(txidA)
    const b = this.locate(txidB)
    const ta = this.blocks[a.epoch].txs[a.index]
    this.blocks[a.epoch].txs[a.index] = this.blocks[b.epoch].txs[b.index]
    this.blocks[b.epoch].txs[b.index] = ta
    this.reseal(Math.min(a.epoch, b.epoch))
  }

  /** Append a copy of an existing transaction in a new block (a replay the idempotent append would refuse). */
  duplicate(txid: string): number {
    const at = this.locate(txid)
    return this.forceBlock([this.blocks[at.epoch].txs[at.index].payload])
  }

  /** Append arbitrary payloads in a new block, bypassing idempotency; returns its epoch. */
  inject(...payloads: Buffer[]): number {
    return this.forceBlock(payloads)
  }

  private forceBlock(payloads: Buffer[]): number {
    const epoch = this.blocks.length
    const prev = this.blocks[epoch - 1]
    const txs = payloads.map((payload) => ({txid: txidOf(payload), payload}))
    this.blocks.push(sealBlock(this.ledgerId, this.identity, {epoch, prevHash: prev.hash, time: prev.time, txs}))
    for (const f of this.followers) this.pump(f)
    return epoch
  }
}
