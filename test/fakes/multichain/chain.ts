/**
 * The state of a fake MultiChain node: blocks, mempool, streams and
 * subscriptions, following MultiChain's documented behaviour for the calls
 * PacioFS uses. Blocks are mined on demand (mine()) or on a timer;
 * reorg() replaces the newest blocks, dropping or reordering transactions.
 */
import {createHash, randomBytes} from 'node:crypto'

export type Mode = '1.0' | '2.0'

export class RpcFault extends Error {
  constructor(readonly code: number, message: string) {
    super(message)
  }
}

export interface FakeItem {
  stream: string
  keys: string[]
  data: {hex: string} | {json: unknown} | {text: string}
  vout: number
}

export interface FakeTx {
  txid: string
  time: number // s
  items: FakeItem[]
  creates?: string
}

export interface FakeBlock {
  height: number
  hash: string
  prev: string
  time: number // s
  txids: string[]
  miner: string
}

const sha = (s: string) => createHash('sha256').update(s).digest('hex')
export const ADDRESS = '1FakeNodeAddressPacioFSxxxxxxxxxxxx'

export class FakeChain {
  readonly name: string
  mode: Mode
  blocks: FakeBlock[] = []
  readonly txs = new Map<string, FakeTx>()
  mempool: string[] = []
  readonly subscribed = new Set<string>()
  /** create/publish answer -704 "No unspent output ..." until the chain has this many blocks after genesis */
  fundedAt = 1
  /** data longer than this (bytes) is shown as a {txid, vout, size} reference */
  maxShownData = 256
  /** the node's view lags this many headers behind (still syncing) */
  syncLag = 0
  private nonce = 0

  constructor(opts: {name?: string; mode?: Mode} = {}) {
    this.name = opts.name ?? 'fakechain'
    this.mode = opts.mode ?? '2.0'
    this.blocks.push(this.makeBlock(0, '0'.repeat(64), []))
  }

  private makeBlock(height: number, prev: string, txids: string[]): FakeBlock {
    const time = Math.max(Math.floor(Date.now() / 1000), this.blocks.at(-1)?.time ?? 0)
    return {height, prev, time, txids, miner: ADDRESS, hash: sha(`${prev}:${height}:${txids.join(',')}:${this.nonce++}:${randomBytes(4).toString('hex')}`)}
  }

  /** Everything a node keeps on disk, for the fake daemon (bin/) that restarts with its chain. */
  save(): string {
    return JSON.stringify({name: this.name, mode: this.mode, blocks: this.blocks, txs: [...this.txs.values()], mempool: this.mempool, subscribed: [...this.subscribed], nonce: this.nonce})
  }

  static load(text: string): FakeChain {
    const j = JSON.parse(text)
    const c = new FakeChain({name: j.name, mode: j.mode})
    c.blocks = j.blocks
    for (const tx of j.txs) {
      c.txs.set(tx.txid, tx)
      if (tx.creates) c.creations.set(tx.creates, [...(c.creations.get(tx.creates) ?? []), tx.txid])
    }
    c.mempool = j.mempool
    for (const s of j.subscribed) c.subscribed.add(s)
    c.nonce = j.nonce
    return c
  }

  get height(): number {
    return this.blocks.length - 1
  }

  private placed = new Map<string, number>() // txid -> height, rebuilt when blocks change
  private placedFor = -1

  blockOf(txid: string): FakeBlock | undefined {
    const h0 = this.placed.get(txid)
    if (this.placedFor !== this.blocks.length || h0 === undefined || !this.blocks[h0]?.txids.includes(txid)) this.index()
    const h = this.placed.get(txid)
    return h === undefined ? undefined : this.blocks[h]
  }

  private index(): void {
    this.placed.clear()
    for (const b of this.blocks) for (const t of b.txids) this.placed.set(t, b.height)
    this.placedFor = this.blocks.length
  }

  /** Mine n blocks, the first taking the whole mempool. */
  mine(n = 1): void {
    for (let i = 0; i < n; i++) {
      const txids = this.mempool.splice(0)
      this.blocks.push(this.makeBlock(this.blocks.length, this.blocks.at(-1)!.hash, txids))
    }
  }

  /**
   * Replace the newest `depth` blocks by depth+1 new ones. Their transactions
   * go back to the mempool (reversed with `reorder`) and are spread over the
   * new blocks; `drop` chooses transactions that conflict in the new branch
   * and disappear altogether.
   */
  reorg(depth: number, opts: {drop?: (tx: FakeTx) => boolean; reorder?: boolean; leaveInMempool?: boolean} = {}): void {
    depth = Math.min(depth, this.height)
    const removed = this.blocks.splice(this.blocks.length - depth, depth)
    let back = removed.flatMap(b => b.txids)
    back = back.filter(t => {
      const tx = this.txs.get(t)!
      if (!tx.creates && opts.drop?.(tx)) {
        this.txs.delete(t)
        return false
      }
      return true
    })
    if (opts.reorder) back.reverse()
    this.mempool = [...back, ...this.mempool]
    if (opts.leaveInMempool) { // the new branch's blocks do not have them (yet)
      for (let i = 0; i <= depth; i++) this.blocks.push(this.makeBlock(this.blocks.length, this.blocks.at(-1)!.hash, []))
      return
    }
    const all = this.mempool.splice(0)
    const per = Math.ceil(all.length / (depth + 1))
    for (let i = 0; i <= depth; i++) {
      this.blocks.push(this.makeBlock(this.blocks.length, this.blocks.at(-1)!.hash, all.slice(i * per, (i + 1) * per)))
    }
  }

  /** The node restarts without its mempool (transactions it had not mined are lost). */
  dropMempool(): void {
    for (const t of this.mempool) this.txs.delete(t)
    this.mempool = []
  }

  private addTx(items: FakeItem[], creates?: string): string {
    const txid = sha(`tx:${this.nonce++}:${randomBytes(8).toString('hex')}`)
    if (creates) this.creations.set(creates, [...(this.creations.get(creates) ?? []), txid])
    this.txs.set(txid, {txid, time: Math.floor(Date.now() / 1000), items, creates})
    this.mempool.push(txid)
    return txid
  }

  private needFunds(): void {
    if (this.height < this.fundedAt) throw new RpcFault(-704, 'No unspent output with create permission')
  }

  streamTx(name: string): FakeTx | undefined {
    for (const t of this.creations.get(name) ?? []) {
      const tx = this.txs.get(t)
      if (tx) return tx
    }
    return undefined
  }

  private readonly creations = new Map<string, string[]>() // stream name -> txids that created it (normally one)

  requireStream(name: unknown): FakeTx {
    if (typeof name !== 'string') throw new RpcFault(-8, 'Invalid stream identifier')
    const tx = this.streamTx(name)
    if (!tx) throw new RpcFault(-708, `Entity with this identifier not found: ${name}`)
    return tx
  }

  requireSubscribed(name: unknown): void {
    this.requireStream(name)
    if (!this.subscribed.has(name as string)) throw new RpcFault(-703, 'Not subscribed to this stream')
  }

  create(kind: unknown, name: unknown, open: unknown): string {
    if (kind !== 'stream') throw new RpcFault(-8, 'Invalid entity type, should be stream')
    if (typeof name !== 'string' || name.length === 0 || name.length > 32) throw new RpcFault(-8, 'Invalid stream name')
    if (typeof open !== 'boolean' && !(this.mode === '2.0' && typeof open === 'object')) throw new RpcFault(-8, 'Invalid open flag, should be boolean')
    this.needFunds()
    if (this.streamTx(name)) throw new RpcFault(-705, 'Stream, asset or entity with this name already exists')
    return this.addTx([], name)
  }

  publish(stream: unknown, key: unknown, data: unknown): string {
    const st = this.requireStream(stream)
    if (!this.blockOf(st.txid)) throw new RpcFault(-706, 'Stream not confirmed yet')
    const keys = this.mode === '2.0' && Array.isArray(key) ? key : [key]
    for (const k of keys) {
      if (typeof k !== 'string' || Buffer.byteLength(k) > 256) throw new RpcFault(-8, 'Item key should be string up to 256 bytes')
    }
    let d: FakeItem['data']
    if (typeof data === 'string') {
      if (data.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(data)) throw new RpcFault(-8, 'data-hex should be hexadecimal string')
      d = {hex: data.toLowerCase()}
    } else if (this.mode === '2.0' && data && typeof data === 'object' && 'json' in data) {
      d = {json: (data as {json: unknown}).json}
    } else if (this.mode === '2.0' && data && typeof data === 'object' && typeof (data as {text?: unknown}).text === 'string') {
      d = {text: (data as {text: string}).text}
    } else {
      throw new RpcFault(-8, 'data-hex should be hexadecimal string')
    }
    this.needFunds()
    return this.addTx([{stream: stream as string, keys: keys as string[], data: d, vout: 0}])
  }

  /** Confirmed items of a stream in chain order, then unconfirmed ones (mempool order); with `heights`, only those blocks' items. */
  streamItems(stream: string, heights?: number[]): Array<{tx: FakeTx; item: FakeItem; block?: FakeBlock; index?: number}> {
    const out: Array<{tx: FakeTx; item: FakeItem; block?: FakeBlock; index?: number}> = []
    for (const b of heights ? heights.map(h => this.blocks[h]) : this.blocks) {
      b.txids.forEach((t, index) => {
        const tx = this.txs.get(t)!
        for (const item of tx.items) if (item.stream === stream) out.push({tx, item, block: b, index})
      })
    }
    if (heights) return out
    for (const t of this.mempool) {
      const tx = this.txs.get(t)!
      for (const item of tx.items) if (item.stream === stream) out.push({tx, item})
    }
    return out
  }

  dataSize(item: FakeItem): number {
    const d = item.data
    return 'hex' in d ? d.hex.length / 2 : this.dataBytes(item).length
  }

  dataBytes(item: FakeItem): Buffer {
    const d = item.data
    if ('hex' in d) return Buffer.from(d.hex, 'hex')
    if ('text' in d) return Buffer.from(d.text, 'utf8')
    return Buffer.from(JSON.stringify(d.json))
  }

  /** An item as liststream*items shows it, in this node's version's shape. */
  render(e: {tx: FakeTx; item: FakeItem; block?: FakeBlock; index?: number}): Record<string, unknown> {
    const size = this.dataSize(e.item)
    let data: unknown
    if (size > this.maxShownData) {
      data = this.mode === '1.0' ? {txid: e.tx.txid, vout: e.item.vout, size}
        : {txid: e.tx.txid, vout: e.item.vout, format: 'hex' in e.item.data ? 'hex' : 'json' in e.item.data ? 'json' : 'text', size}
    } else if ('hex' in e.item.data) {
      data = e.item.data.hex
    } else {
      data = e.item.data
    }
    const out: Record<string, unknown> = {publishers: [ADDRESS]}
    if (this.mode === '1.0') out.key = e.item.keys[0] ?? ''
    else if (e.item.keys.length > 0) out.keys = e.item.keys // 2.0 leaves out what is empty
    if (this.mode === '2.0') {
      out.offchain = false
      out.available = true
    }
    out.data = data
    out.confirmations = e.block ? this.height - e.block.height + 1 : 0
    if (e.block) {
      out.blockhash = e.block.hash
      out.blockindex = e.index
      out.blocktime = e.block.time
    }
    out.txid = e.tx.txid
    out.vout = e.item.vout
    out.valid = true
    out.time = e.tx.time
    out.timereceived = e.tx.time
    return out
  }

  /** Heights named by a block-set: a height, a hash, "a-b", or an array of those. */
  blockSet(set: unknown): number[] {
    const one = (s: unknown): number[] => {
      if (typeof s === 'number' && Number.isInteger(s)) {
        if (s < 0 || s > this.height) throw new RpcFault(-8, 'Block height out of range')
        return [s]
      }
      if (typeof s === 'string') {
        const range = /^(\d+)-(\d+)$/.exec(s)
        if (range) {
          const a = Number(range[1])
          const b = Number(range[2])
          if (a > this.height) throw new RpcFault(-8, 'Block height out of range')
          const out: number[] = []
          for (let h = a; h <= Math.min(b, this.height); h++) out.push(h)
          return out
        }
        if (/^\d+$/.test(s)) return one(Number(s))
        const b = this.blocks.find(x => x.hash === s)
        if (!b) throw new RpcFault(-5, 'Block not found')
        return [b.height]
      }
      if (Array.isArray(s)) return s.flatMap(one)
      throw new RpcFault(-8, 'Invalid block set')
    }
    return [...new Set(one(set))].sort((a, b) => a - b)
  }
}
