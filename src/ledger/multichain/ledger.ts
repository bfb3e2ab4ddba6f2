/**
 * The MultiChain driver of the Ledger port. One stream per volume; every
 * append() payload goes into a batch (one stream item, published as hex, up
 * to `maxBatchPayloads` payloads / `maxBatchBytes`), several batches are
 * published at once, and a payload's append() resolves when its batch's
 * block has `confirmations` confirmations. Only such blocks are read or
 * followed.
 *
 * Nothing is lost and nothing delivered twice:
 *  - a batch whose publish failed or went unanswered, or that has not been
 *    seen in a block after `resendAfterMs`, is looked up by its key (the
 *    node's wallet and mempool included) and re-published, same key, only if
 *    it is gone (node restarted without its mempool, reorganisation that
 *    dropped it);
 *  - a copy that reaches the chain anyway is skipped by every reader (reader.ts);
 *  - a reorganisation below the confirmed head (deeper than `confirmations`)
 *    is detected by block hash: batches confirmed in replaced blocks are
 *    checked again, and followers deliver the replaced blocks' batches they
 *    had not delivered with their next block (a batch is never delivered twice).
 */
import {sha256Hex} from '../../crypto/hash.js'
import type {Identity} from '../../crypto/sign.js'
import {CorruptStateError, PacioError} from '../../errors.js'
import {signCheckpoint, verifyCheckpoint, type ConsistencyResult} from '../checkpoint.js'
import type {AuditableLedger, Block, Checkpoint, Committed, Tx} from '../types.js'
import {encodeFrame, frameCost, frameKey, FRAME_OVERHEAD} from './frame.js'
import {ChainReader} from './reader.js'
import {isRetryable, RpcClient, RpcError, RPC, type RpcConfig} from './rpc.js'

export interface MultiChainOpenOptions {
  rpc: RpcConfig
  /** the volume id */
  ledgerId: string
  /** stream name (default: streamName(ledgerId)) */
  stream?: string
  /** signs checkpoints of the confirmed head (the volume's node key) */
  identity?: Identity
  /** confirmations a block needs before it is read, followed or acknowledged (default 1) */
  confirmations?: number
  /** the genesis block hash this volume's chain must have */
  genesis?: string
  readonly?: boolean
  pollMs?: number
  maxBatchPayloads?: number
  maxBatchBytes?: number
  groupWindowMs?: number
  /** publish calls in flight at once (default 8) */
  maxInflight?: number
  resendAfterMs?: number
  /** how long open() waits for a node that is starting, syncing or not yet funded (default 60 s) */
  startTimeoutMs?: number
  /** how long open() tries to reach the node at all (default 10 s, at most startTimeoutMs) */
  connectTimeoutMs?: number
  /** how long close() waits for published batches to confirm (default 60 s) */
  closeTimeoutMs?: number
  rpcTimeoutMs?: number
}

/** MultiChain stream names have at most 32 characters. */
export function streamName(ledgerId: string): string {
  return `pfs-${ledgerId.replace(/[^0-9a-zA-Z]/g, '').slice(0, 28)}`
}

interface Waiting {
  call: Call
  pos: number
  payload: Buffer
  hash: string // sha256(payload), hex
  index: number // place in its batch, once cut
}

interface Call {
  results: Committed[]
  remaining: number
  done: boolean
  resolve: (r: Committed[]) => void
  reject: (e: Error) => void
}

interface Batch {
  key: string
  hex: string
  payloads: Buffer[]
  waiting: Waiting[]
  state: 'queued' | 'publishing' | 'sent' | 'confirmed'
  txid?: string
  sentAt: number
  height?: number
}

interface Follower {
  next: number
  onBlock: (b: Block) => void
  onError?: (e: Error) => void
  stopped: boolean
  running: boolean
  /** batch keys delivered, by height (recent heights only) */
  delivered: Map<number, string[]>
  keys: Set<string>
  carry: Tx[]
  rewindTo?: number
}

const RETAIN_BLOCKS = 100
const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

export class MultiChainLedger implements AuditableLedger {
  readonly driver = 'multichain'
  readonly ledgerId: string
  readonly stream: string
  readonly readonly: boolean
  readonly chain: ChainReader
  readonly rpc: RpcClient
  /** hash of the chain's genesis block (known after open) */
  genesis = ''
  /** a warning for the user (a deep reorganisation, a re-published batch) */
  onWarning?: (message: string) => void

  private readonly conf: number
  private readonly identity?: Identity
  private readonly o: Required<Pick<MultiChainOpenOptions, 'pollMs' | 'maxBatchPayloads' | 'maxBatchBytes' | 'groupWindowMs' | 'maxInflight' | 'resendAfterMs' | 'startTimeoutMs' | 'closeTimeoutMs'>>
  private pending: Waiting[] = []
  private pendingBytes = 0
  private firstPendingAt = 0
  private timer?: NodeJS.Timeout
  private readonly batches = new Map<string, Batch>()
  private readonly toPublish: Batch[] = []
  private inflight = 0
  private readonly committed = new Map<string, Committed>() // sha256(payload) -> where, for the batches still retained
  private readonly followers = new Set<Follower>()
  private horizon = -1 // highest confirmed height seen
  private scanNext = 0
  private readonly scanned = new Map<number, string>() // height -> hash, recent
  private poller?: NodeJS.Timeout
  private ticking = false
  /** the node did not answer in the last round: when it is back, look for our batches at once (its mempool may be gone) */
  private nodeAway = false
  private lastTip?: {height: number; hash: string}
  private closed = false
  private closing = false
  private idle: Array<() => void> = []

  private readonly connectMs: number

  private constructor(opts: MultiChainOpenOptions) {
    this.connectMs = opts.connectTimeoutMs ?? 10_000
    this.ledgerId = opts.ledgerId
    this.stream = opts.stream ?? streamName(opts.ledgerId)
    this.readonly = opts.readonly ?? false
    this.rpc = new RpcClient(opts.rpc, opts.rpcTimeoutMs)
    this.chain = new ChainReader(this.rpc, this.stream)
    this.conf = Math.max(1, opts.confirmations ?? 1)
    this.identity = opts.identity
    this.o = {
      pollMs: opts.pollMs ?? 250,
      maxBatchPayloads: opts.maxBatchPayloads ?? 512,
      maxBatchBytes: opts.maxBatchBytes ?? 512 * 1024,
      groupWindowMs: opts.groupWindowMs ?? 5,
      maxInflight: opts.maxInflight ?? 8,
      resendAfterMs: opts.resendAfterMs ?? 15_000,
      startTimeoutMs: opts.startTimeoutMs ?? 60_000,
      closeTimeoutMs: opts.closeTimeoutMs ?? 60_000,
    }
  }

  private get where(): string {
    return `MultiChain chain ${this.rpc.config.chain} at ${this.rpc.config.host}:${this.rpc.config.port}`
  }

  get confirmations(): number {
    return this.conf
  }

  /**
   * Connect, wait for a starting or syncing node, make sure the stream exists
   * (writer: create it, waiting out "no unspent output" on a fresh chain) and
   * is subscribed, and check the chain is the volume's (genesis hash).
   */
  static async open(opts: MultiChainOpenOptions): Promise<MultiChainLedger> {
    const l = new MultiChainLedger(opts)
    try {
      await l.start(opts.genesis)
    } catch (error) {
      await l.close().catch(() => {})
      throw error
    }
    return l
  }

  /** Calls fn until it succeeds or fails for a reason waiting does not cure, or the start timeout passes. */
  private async patiently<T>(what: string, fn: () => Promise<T>, timeoutMs = this.o.startTimeoutMs): Promise<T> {
    const until = Date.now() + timeoutMs
    for (let delay = 100; ; delay = Math.min(delay * 2, 2000)) {
      try {
        return await fn()
      } catch (error) {
        if (!isRetryable(error) || Date.now() + delay > until || this.closed) {
          if (isRetryable(error)) throw new RpcError(`${(error as Error).message} (gave up ${what} after ${timeoutMs / 1000}s)`, (error as RpcError).rpcCode, false)
          throw error
        }
        await sleep(delay)
      }
    }
  }

  private async start(genesis?: string): Promise<void> {
    await this.patiently('connecting', () => this.rpc.call('getinfo'), Math.min(this.connectMs, this.o.startTimeoutMs))
    await this.patiently('waiting for the node to sync', async () => {
      const info = await this.rpc.call<{blocks?: number; headers?: number}>('getblockchaininfo')
      const blocks = Number(info?.blocks ?? 0)
      const headers = Number(info?.headers ?? blocks)
      if (headers > blocks + 1) throw new RpcError(`${this.rpc.config.host}:${this.rpc.config.port}: the node is still syncing (block ${blocks} of ${headers})`, undefined, true)
    })
    const [g] = await this.chain.blocks(0, 0)
    this.genesis = g?.hash ?? ''
    if (genesis && genesis !== this.genesis) {
      throw new PacioError('EFOREIGN', `the MultiChain node at ${this.rpc.config.host}:${this.rpc.config.port} is on another chain (genesis ${this.genesis.slice(0, 16)}…, the volume's chain has ${genesis.slice(0, 16)}…)`,
        {suggestion: 'point --chain at a node of the chain the volume was created on'})
    }
    await this.ensureStream()
    await this.patiently('subscribing', () => this.rpc.call('subscribe', this.stream))
    const tip = await this.chain.tip()
    this.horizon = tip.height - this.conf + 1
    this.scanNext = Math.max(0, this.horizon + 1)
    if (!this.readonly) await this.settle()
  }

  private async ensureStream(): Promise<void> {
    const exists = async () => {
      try {
        const list = await this.rpc.call<Array<Record<string, unknown>>>('liststreams', this.stream)
        const s = Array.isArray(list) ? list[0] : undefined
        return {found: true, confirmed: Boolean(s && (s.confirmed === true || (typeof s.streamref === 'string' && s.streamref !== '')))}
      } catch (error) {
        if (error instanceof RpcError && error.rpcCode === RPC.ENTITY_NOT_FOUND) return {found: false, confirmed: false}
        throw error
      }
    }
    let s = await this.patiently('looking for the stream', exists)
    if (!s.found) {
      if (this.readonly) {
        throw new PacioError('ENOVOLUME', `stream ${this.stream} not found on chain ${this.rpc.config.chain}: this volume has never been mounted on this chain`,
          {suggestion: 'mount the volume with this --chain first, or point --chain at the chain it was created on'})
      }
      await this.patiently('creating the stream', async () => {
        try {
          await this.rpc.call('create', 'stream', this.stream, true)
        } catch (error) {
          if (!(error instanceof RpcError && error.rpcCode === RPC.DUPLICATE_NAME)) throw error
        }
      })
    }
    if (!s.confirmed) {
      await this.patiently('waiting for the stream to be confirmed', async () => {
        s = await exists()
        if (!s.confirmed) throw new RpcError(`stream ${this.stream} is not confirmed yet`, RPC.UNCONFIRMED_ENTITY, true)
      })
    }
  }

  /**
   * Items of the stream still unconfirmed (e.g. published by a process that
   * stopped before its block came) are waited for, so that the layer above,
   * which looks on the ledger for what it sent before, sees them.
   */
  private async settle(): Promise<void> {
    await this.patiently('waiting for earlier items to confirm', async () => {
      const raw = await this.rpc.call<Array<Record<string, unknown>>>('liststreamitems', this.stream, false, 1000)
      const open = Array.isArray(raw) ? raw.filter(r => !(Number(r?.confirmations) >= this.conf)) : []
      if (open.length > 0) throw new RpcError(`${open.length} earlier item(s) of stream ${this.stream} are not confirmed yet`, undefined, true)
    })
  }

  append(payloads: Buffer[]): Promise<Committed[]> {
    if (this.closed || this.closing) return Promise.reject(new PacioError('ELEDGER', 'MultiChain ledger is closed'))
    if (this.readonly) return Promise.reject(new PacioError('EPERM', 'MultiChain ledger was opened read-only'))
    if (!Array.isArray(payloads) || payloads.some(p => !(p instanceof Uint8Array))) return Promise.reject(new PacioError('EINPUT', 'append() takes an array of Buffers'))
    if (payloads.length === 0) return Promise.resolve([])
    return new Promise<Committed[]>((resolve, reject) => {
      const call: Call = {results: new Array(payloads.length), remaining: payloads.length, done: false, resolve, reject}
      for (let i = 0; i < payloads.length; i++) {
        const payload = Buffer.from(payloads[i])
        const hash = sha256Hex(payload)
        const known = this.committed.get(hash)
        if (known) {
          this.settleOne(call, i, known)
          continue
        }
        if (this.pending.length === 0) this.firstPendingAt = performance.now()
        this.pending.push({call, pos: i, payload, hash, index: -1})
        this.pendingBytes += frameCost(payload)
      }
      this.schedule()
    })
  }

  private settleOne(call: Call, pos: number, c: Committed): void {
    if (call.done) return
    call.results[pos] = c
    if (--call.remaining === 0) {
      call.done = true
      call.resolve(call.results)
    }
  }

  /** A batch may be cut: enough is waiting, or the first waited groupWindowMs, or we are closing. */
  private ready(): boolean {
    if (this.pending.length === 0) return false
    const full = this.pending.length >= this.o.maxBatchPayloads || this.pendingBytes + FRAME_OVERHEAD >= this.o.maxBatchBytes
    return full || this.closing || performance.now() - this.firstPendingAt >= this.o.groupWindowMs
  }

  private schedule(): void {
    if (this.pending.length === 0) return
    if (this.ready()) {
      if (this.timer) clearTimeout(this.timer)
      this.timer = undefined
      this.publishMore()
    } else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined
        this.schedule()
      }, Math.max(0, this.o.groupWindowMs - (performance.now() - this.firstPendingAt)))
    }
  }

  /** The next batch from the front of what is waiting (undefined when it is a batch already on its way). */
  private cut(): Batch | undefined {
    let n = 0
    let bytes = FRAME_OVERHEAD
    while (n < this.pending.length && n < this.o.maxBatchPayloads && (n === 0 || bytes + frameCost(this.pending[n].payload) <= this.o.maxBatchBytes)) {
      bytes += frameCost(this.pending[n].payload)
      n++
    }
    const waiting = this.pending.splice(0, n)
    waiting.forEach((w, i) => {
      w.index = i
    })
    this.pendingBytes -= bytes - FRAME_OVERHEAD
    this.firstPendingAt = performance.now()
    const payloads = waiting.map(w => w.payload)
    const frame = encodeFrame(payloads)
    const key = frameKey(frame)
    const same = this.batches.get(key)
    if (same) { // the very same batch is on its way already: wait for it
      same.waiting.push(...waiting)
      return undefined
    }
    const batch: Batch = {key, hex: frame.toString('hex'), payloads, waiting, state: 'queued', sentAt: 0}
    this.batches.set(key, batch)
    return batch
  }

  /**
   * Fill the free publish slots: batches to publish again first, then new
   * ones cut from what is waiting. Batches are cut only when a slot is free,
   * so while the node is busy, waiting appends gather into bigger batches.
   */
  private publishMore(): void {
    while (this.inflight < this.o.maxInflight && !this.closed) {
      const b = this.toPublish.shift() ?? (this.ready() ? this.cut() : undefined)
      if (!b) {
        if (this.pending.length > 0 && this.ready()) continue // merged into a batch on its way; cut the next
        break
      }
      this.inflight++
      b.state = 'publishing'
      void this.publish(b).finally(() => {
        this.inflight--
        this.publishMore()
      })
    }
    if (this.pending.length > 0 && this.inflight < this.o.maxInflight && !this.timer) this.schedule()
    this.startPolling()
  }

  private async publish(b: Batch): Promise<void> {
    try {
      b.txid = await this.rpc.call<string>('publish', this.stream, b.key, b.hex)
      b.state = 'sent'
      b.sentAt = Date.now()
    } catch (error) {
      if (isRetryable(error)) {
        // unknown whether the node took it: look it up later, re-publish only if absent
        b.state = 'sent'
        b.sentAt = Date.now() - this.o.resendAfterMs + Math.min(2000, this.o.resendAfterMs)
        return
      }
      this.batches.delete(b.key)
      for (const w of b.waiting) {
        if (w.call.done) continue
        w.call.done = true
        w.call.reject(error as Error)
      }
    }
  }

  private startPolling(): void {
    if (this.poller || this.closed) return
    this.poller = setInterval(() => void this.tick(), this.o.pollMs)
  }

  private needsPolling(): boolean {
    return this.followers.size > 0 || [...this.batches.values()].some(b => b.state !== 'confirmed') || this.pending.length > 0
  }

  /** One round: confirmed head, reorganisations, confirmations of our batches, re-sends, followers. */
  private async tick(): Promise<void> {
    if (this.ticking || this.closed) return
    this.ticking = true
    try {
      const tip = await this.chain.tip()
      this.horizon = tip.height - this.conf + 1
      if (this.nodeAway || await this.tipReplaced(tip)) {
        // the node restarted (its mempool may be gone) or blocks above the confirmed head were replaced
        // (a batch in them may have been dropped): look for our unconfirmed batches at once
        this.nodeAway = false
        for (const b of this.batches.values()) if (b.state === 'sent') b.sentAt = 0
      }
      this.lastTip = tip
      await this.checkReorg()
      while (this.scanNext <= this.horizon && !this.closed) {
        const to = Math.min(this.horizon, this.scanNext + 199)
        for (const b of await this.chain.places(this.scanNext, to)) this.scanBlock(b)
        this.scanNext = to + 1
      }
      await this.resend()
      for (const f of this.followers) void this.pump(f)
    } catch (error) {
      if (!isRetryable(error)) for (const f of [...this.followers]) this.fail(f, error as Error)
      else this.nodeAway = true // the next round tries again
    } finally {
      this.ticking = false
      if (!this.needsPolling() && this.poller) {
        clearInterval(this.poller)
        this.poller = undefined
      }
      if (![...this.batches.values()].some(b => b.state !== 'confirmed') && this.pending.length === 0) for (const d of this.idle.splice(0)) d()
    }
  }

  /** Is the tip seen in the last round no longer on the chain? (Asked only while batches wait for their block.) */
  private async tipReplaced(tip: {height: number; hash: string}): Promise<boolean> {
    const last = this.lastTip
    if (!last || tip.hash === last.hash || ![...this.batches.values()].some(b => b.state === 'sent')) return false
    if (tip.height < last.height) return true
    const [b] = await this.chain.blocks(last.height, last.height)
    return b?.hash !== last.hash
  }

  /** Our batches in a newly confirmed block are committed. (Our publishes put one item in a transaction: payload i is `<txid>:i`, as read() numbers it.) */
  private scanBlock(block: {height: number; hash: string; items: Array<{key: string; txid: string}>}): void {
    const h = block.height
    this.scanned.set(h, block.hash)
    this.scanned.delete(h - RETAIN_BLOCKS)
    for (const it of block.items) {
      const b = this.batches.get(it.key)
      if (!b || b.state === 'confirmed') continue
      b.state = 'confirmed'
      b.txid = it.txid
      b.height = h
      for (const w of b.waiting) {
        const c = {txid: `${it.txid}:${w.index}`, epoch: h}
        this.committed.set(w.hash, c)
        this.settleOne(w.call, w.pos, c)
      }
    }
    for (const [key, b] of this.batches) {
      if (b.state === 'confirmed' && b.height !== undefined && b.height < h - RETAIN_BLOCKS) {
        this.batches.delete(key) // deep enough: no longer watched for reorganisations, nor remembered for idempotent appends
        for (const w of b.waiting) this.committed.delete(w.hash)
      }
    }
  }

  /** Was a block we scanned replaced? Then rescan from the fork and check the batches confirmed there. */
  private async checkReorg(): Promise<void> {
    const heights = [...this.scanned.keys()].filter(h => h < this.scanNext)
    if (heights.length === 0) return
    const low = Math.min(...heights)
    const high = Math.max(...heights)
    const now = await this.chain.blocks(low, Math.min(high, this.horizon + this.conf - 1))
    const current = new Map(now.map(b => [b.height, b.hash]))
    let fork: number | undefined
    for (let h = low; h <= high; h++) {
      const had = this.scanned.get(h)
      if (had !== undefined && current.get(h) !== had) {
        fork = h
        break
      }
    }
    if (fork === undefined) return
    this.onWarning?.(`MultiChain reorganisation: blocks from height ${fork} were replaced (deeper than the ${this.conf} confirmation(s) required); checking what they held`)
    for (let h = fork; h <= high; h++) this.scanned.delete(h)
    this.scanNext = Math.min(this.scanNext, fork)
    for (const b of this.batches.values()) {
      if (b.state === 'confirmed' && (b.height ?? 0) >= fork) {
        b.state = 'sent'
        b.sentAt = 0 // look it up at once
        b.height = undefined
      }
    }
    for (const f of this.followers) if (f.next > fork) f.rewindTo = Math.min(f.rewindTo ?? fork, fork)
  }

  /** Batches not seen in a block for a while: still known to the node? If not, publish them again. */
  private async resend(): Promise<void> {
    const now = Date.now()
    for (const b of this.batches.values()) {
      if (b.state !== 'sent' || now - b.sentAt < this.o.resendAfterMs || this.closed) continue
      const found = await this.chain.byKey(b.key)
      if (found.length > 0) {
        b.sentAt = now
        continue
      }
      b.state = 'queued'
      this.onWarning?.(`batch ${b.key.slice(0, 12)}… (${b.payloads.length} record(s)) vanished from the node; publishing it again`)
      this.toPublish.push(b)
    }
    this.publishMore()
  }

  /** Resolves when every append made so far is confirmed (or failed). */
  flush(): Promise<void> {
    if (this.pending.length === 0 && ![...this.batches.values()].some(b => b.state !== 'confirmed')) return Promise.resolve()
    this.startPolling()
    return new Promise(resolve => this.idle.push(resolve))
  }

  private async confirmedHead(): Promise<number> {
    const tip = await this.chain.tip()
    this.horizon = Math.max(this.horizon, tip.height - this.conf + 1)
    return tip.height - this.conf + 1
  }

  async *read(fromEpoch: number, toEpoch?: number): AsyncIterable<Block> {
    if (!Number.isSafeInteger(fromEpoch) || fromEpoch < 0) throw new PacioError('EINPUT', `bad epoch ${fromEpoch}`)
    const last = Math.min(toEpoch ?? Number.MAX_SAFE_INTEGER, await this.confirmedHead())
    for (let e = fromEpoch; e <= last && !this.closed; e += 200) {
      const range = await this.chain.range(e, Math.min(last, e + 199))
      for (const rb of range) yield rb.block
    }
  }

  follow(fromEpoch: number, onBlock: (b: Block) => void, onError?: (e: Error) => void): () => void {
    const f: Follower = {next: Math.max(0, fromEpoch), onBlock, onError, stopped: false, running: false, delivered: new Map(), keys: new Set(), carry: []}
    this.followers.add(f)
    this.startPolling()
    setImmediate(() => void this.pump(f))
    return () => {
      f.stopped = true
      this.followers.delete(f)
    }
  }

  private fail(f: Follower, error: Error): void {
    f.stopped = true
    this.followers.delete(f)
    f.onError?.(error)
  }

  private remember(f: Follower, height: number, keys: string[]): void {
    f.delivered.set(height, keys)
    for (const k of keys) f.keys.add(k)
    const old = f.delivered.get(height - RETAIN_BLOCKS)
    if (old) {
      f.delivered.delete(height - RETAIN_BLOCKS)
      for (const k of old) f.keys.delete(k)
    }
  }

  private async pump(f: Follower): Promise<void> {
    if (f.running || f.stopped || this.closed) return
    f.running = true
    try {
      if (f.rewindTo !== undefined) {
        // blocks we delivered were replaced: what they hold now and we did not deliver goes with the next block
        const from = f.rewindTo
        f.rewindTo = undefined
        for (const rb of await this.chain.range(from, f.next - 1)) {
          for (const bt of rb.batches) {
            if (f.keys.has(bt.key)) continue
            f.carry.push(...rb.block.txs.slice(bt.first, bt.first + bt.count))
            f.keys.add(bt.key)
            f.delivered.set(f.next, [...(f.delivered.get(f.next) ?? []), bt.key])
          }
        }
      }
      while (!f.stopped && !this.closed && f.next <= this.horizon) {
        const to = Math.min(this.horizon, f.next + 31)
        for (const rb of await this.chain.range(f.next, to)) {
          if (f.stopped || rb.block.epoch !== f.next) break
          const txs: Tx[] = f.carry.splice(0)
          const keys: string[] = []
          for (const bt of rb.batches) {
            if (f.keys.has(bt.key)) continue
            keys.push(bt.key)
            txs.push(...rb.block.txs.slice(bt.first, bt.first + bt.count))
          }
          const batched = new Set(rb.batches.flatMap(bt => rb.block.txs.slice(bt.first, bt.first + bt.count)))
          for (const tx of rb.block.txs) if (!batched.has(tx)) txs.push(tx) // items without a key
          this.remember(f, rb.block.epoch, keys)
          f.next = rb.block.epoch + 1
          f.onBlock({...rb.block, txs})
        }
      }
    } catch (error) {
      if (!isRetryable(error)) this.fail(f, error as Error)
    } finally {
      f.running = false
    }
  }

  /** The confirmed head as a checkpoint: height and block hash, signed by this volume's node key. */
  async head(): Promise<Checkpoint> {
    return this.checkpoint(Math.max(0, await this.confirmedHead()))
  }

  async checkpoint(epoch: number): Promise<Checkpoint> {
    const [b] = await this.chain.blocks(epoch, epoch)
    if (!b) throw new PacioError('ELEDGER', `MultiChain has no block at height ${epoch}`)
    const head = {epoch: b.height, hash: b.hash, time: Math.round(b.time * 1000)}
    if (!this.identity) return {ledgerId: this.ledgerId, epoch: head.epoch, headHash: head.hash, time: head.time, producer: '', signature: ''}
    return signCheckpoint(this.ledgerId, head, this.identity)
  }

  /**
   * The auditor's check of the chain as this node has it: genesis to the
   * confirmed head, every block's previousblockhash is the hash of the block
   * before it and heights run without gaps. (MultiChain checks its own block
   * signatures and proof of work; PacioFS has no key of its own in them.)
   */
  async validateAll(onProgress?: (epoch: number, head: number) => void): Promise<void> {
    const head = await this.confirmedHead()
    let prev: {height: number; hash: string} | undefined
    for (let a = 0; a <= head; a += 200) {
      for (const b of await this.chain.blocks(a, Math.min(head, a + 199))) {
        if (prev && b.height !== prev.height + 1) throw new CorruptStateError(this.where, `block ${b.height} follows block ${prev.height}`, b.height)
        if (prev && b.prevHash !== undefined && b.prevHash !== prev.hash) {
          throw new CorruptStateError(this.where, `block ${b.height} links to ${b.prevHash}, but block ${prev.height} is ${prev.hash}`, b.height)
        }
        prev = {height: b.height, hash: b.hash}
      }
      onProgress?.(prev?.height ?? 0, head)
    }
    if (prev === undefined) throw new CorruptStateError(this.where, 'the node lists no blocks')
  }

  /** Does the chain still hold the block a checkpoint names, at its height? */
  async consistency(cp: Checkpoint): Promise<ConsistencyResult> {
    if (cp.producer !== '' && !verifyCheckpoint(cp, cp.producer)) {
      return {ok: false, kind: 'checkpoint-signature', epoch: cp.epoch, detail: 'the checkpoint\'s signature does not verify'}
    }
    const head = await this.confirmedHead()
    if (cp.epoch > head) return {ok: false, kind: 'truncated', epoch: cp.epoch, detail: `the chain's confirmed head is at height ${head}, before the checkpoint's height ${cp.epoch}`}
    const [b] = await this.chain.blocks(cp.epoch, cp.epoch)
    if (!b || b.hash !== cp.headHash) {
      return {ok: false, kind: 'checkpoint-mismatch', epoch: cp.epoch, detail: `the block at height ${cp.epoch} has another hash: the chain was rewritten there`,
        expected: cp.headHash, found: b?.hash}
    }
    const [h] = await this.chain.blocks(head, head)
    return {ok: true, headEpoch: head, headHash: h?.hash ?? ''}
  }

  /** Stop accepting appends, wait (up to closeTimeoutMs) for published batches to confirm, stop followers. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closing = true
    if (!this.readonly && (this.pending.length > 0 || this.batches.size > 0)) {
      this.schedule()
      let timer: NodeJS.Timeout | undefined
      await Promise.race([this.flush(), new Promise(resolve => {
        timer = setTimeout(resolve, this.o.closeTimeoutMs)
      })])
      clearTimeout(timer)
    }
    this.closed = true
    if (this.timer) clearTimeout(this.timer)
    if (this.poller) clearInterval(this.poller)
    this.poller = undefined
    for (const f of [...this.followers]) {
      f.stopped = true
      this.followers.delete(f)
    }
    const error = new PacioError('ELEDGER', 'MultiChain ledger closed before the record was confirmed; it is re-sent on the next open')
    for (const w of this.pending) if (!w.call.done) { w.call.done = true; w.call.reject(error) }
    for (const b of this.batches.values()) for (const w of b.waiting) if (!w.call.done) { w.call.done = true; w.call.reject(error) }
    this.pending = []
    for (const d of this.idle.splice(0)) d()
  }
}
