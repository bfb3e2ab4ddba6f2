/**
 * Reading a volume's stream from a MultiChain node as PacioFS blocks:
 * epoch = block height, hash = block hash, prevHash = previousblockhash,
 * time = block time; each stream item is a frame of payloads (frame.ts),
 * one Tx per payload with txid `<MultiChain txid>:<index within that
 * transaction>`. MultiChain 1.0 and 2.0 reply shapes are both accepted
 * (`key` or `keys`, data as hex, {json}, {text} or a large-data reference
 * {txid, vout, format?, size} fetched with gettxoutdata; empty arrays may be
 * omitted). A batch that reached the chain twice (same key) is delivered
 * once, at its first confirmed place.
 */
import {ZERO_HASH} from '../../crypto/hash.js'
import type {Block, Tx} from '../types.js'
import {decodeFrame} from './frame.js'
import {RpcError, type RpcClient} from './rpc.js'

export interface ChainBlock {
  height: number
  hash: string
  prevHash?: string
  time: number // seconds
  miner?: string
  merkleroot?: string
  confirmations?: number
}

export interface StreamItem {
  txid: string
  vout?: number
  key?: string
  blockhash?: string
  confirmations: number
  data: Buffer | null // null: absent or unreadable
}

/** One block as read, with the batches (stream items) it holds. */
export interface RangeBlock {
  block: Block
  batches: Array<{key: string; txid: string; first: number; count: number}>
}

const PAGE = 1000
const CHUNK_BLOCKS = 200
const LARGE_CHUNK = 4 * 1024 * 1024

function hexToBuffer(s: string): Buffer | null {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) return null
  return Buffer.from(s, 'hex')
}

export class ChainReader {
  constructor(readonly rpc: RpcClient, readonly stream: string) {}

  async tip(): Promise<{height: number; hash: string}> {
    const info = await this.rpc.call<{blocks?: unknown; bestblockhash?: unknown}>('getblockchaininfo')
    if (!Number.isSafeInteger(info?.blocks)) throw new RpcError(`unexpected getblockchaininfo reply: ${JSON.stringify(info).slice(0, 200)}`, undefined, true)
    return {height: info.blocks as number, hash: String(info.bestblockhash ?? '')}
  }

  /** Blocks from..to (inclusive) of the node's active chain, in order. */
  async blocks(from: number, to: number): Promise<ChainBlock[]> {
    const out: ChainBlock[] = []
    for (let a = from; a <= to; a += CHUNK_BLOCKS) {
      const b = Math.min(to, a + CHUNK_BLOCKS - 1)
      const raw = await this.rpc.call<unknown[]>('listblocks', `${a}-${b}`, true)
      if (!Array.isArray(raw)) throw new RpcError(`unexpected listblocks reply`, undefined, true)
      for (const r of raw as Array<Record<string, unknown>>) {
        if (!Number.isSafeInteger(r?.height) || typeof r.hash !== 'string') throw new RpcError(`unexpected listblocks entry ${JSON.stringify(r).slice(0, 200)}`, undefined, true)
        out.push({height: r.height as number, hash: r.hash, prevHash: typeof r.previousblockhash === 'string' ? r.previousblockhash : undefined,
          time: Number(r.time ?? 0), miner: typeof r.miner === 'string' ? r.miner : undefined,
          merkleroot: typeof r.merkleroot === 'string' ? r.merkleroot : undefined, confirmations: typeof r.confirmations === 'number' ? r.confirmations : undefined})
      }
    }
    out.sort((x, y) => x.height - y.height)
    return out
  }

  private async itemData(raw: unknown): Promise<Buffer | null> {
    if (typeof raw === 'string') return hexToBuffer(raw)
    if (!raw || typeof raw !== 'object') return null
    const d = raw as Record<string, unknown>
    if (typeof d.txid === 'string' && Number.isSafeInteger(d.vout)) {
      // large data (over the node's maxshowndata): fetch it in chunks
      const size = Number.isSafeInteger(d.size) ? d.size as number : undefined
      const parts: Buffer[] = []
      let got = 0
      for (;;) {
        const count = size === undefined ? 2_147_483_647 : Math.min(LARGE_CHUNK, size - got)
        const r = await this.rpc.call<unknown>('gettxoutdata', d.txid, d.vout, count, got)
        const buf = typeof r === 'string' ? hexToBuffer(r) : await this.itemData(r)
        if (!buf) return null
        parts.push(buf)
        got += buf.length
        if (size === undefined || got >= size || buf.length === 0) break
      }
      return Buffer.concat(parts)
    }
    if ('json' in d) return Buffer.from(JSON.stringify(d.json))
    if (typeof d.text === 'string') return Buffer.from(d.text, 'utf8')
    return null
  }

  private async normalise(r: Record<string, unknown>, withData = true): Promise<StreamItem> {
    if (typeof r?.txid !== 'string') throw new RpcError(`unexpected stream item ${JSON.stringify(r).slice(0, 200)}`, undefined, true)
    const keys = Array.isArray(r.keys) ? r.keys : typeof r.key === 'string' ? [r.key] : []
    return {
      txid: r.txid,
      vout: Number.isSafeInteger(r.vout) ? r.vout as number : undefined,
      key: typeof keys[0] === 'string' ? keys[0] : undefined,
      blockhash: typeof r.blockhash === 'string' ? r.blockhash : undefined,
      confirmations: Number.isSafeInteger(r.confirmations) ? r.confirmations as number : 0,
      data: withData ? await this.itemData(r.data) : null,
    }
  }

  /** Every item of the stream in blocks from..to, in chain order (withData false: keys and places only, no large-data fetches). */
  async items(from: number, to: number, withData = true): Promise<StreamItem[]> {
    const out: StreamItem[] = []
    for (let start = 0; ; start += PAGE) {
      const raw = await this.rpc.call<unknown[]>('liststreamblockitems', this.stream, `${from}-${to}`, false, PAGE, start)
      if (!Array.isArray(raw)) throw new RpcError('unexpected liststreamblockitems reply', undefined, true)
      for (const r of raw) out.push(await this.normalise(r as Record<string, unknown>, withData))
      if (raw.length < PAGE) break
    }
    return out
  }

  /** Items carrying this key, confirmed or not (the node's wallet and mempool included). */
  async byKey(key: string): Promise<StreamItem[]> {
    const raw = await this.rpc.call<unknown[]>('liststreamkeyitems', this.stream, key, false, 100, 0)
    if (!Array.isArray(raw)) throw new RpcError('unexpected liststreamkeyitems reply', undefined, true)
    const out: StreamItem[] = []
    for (const r of raw) {
      const rr = r as Record<string, unknown>
      out.push(await this.normalise(rr, false))
    }
    return out
  }

  /** For keys seen more than once on the stream: the txid of the first confirmed item with that key. */
  private async firstPlaces(keys: string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>()
    if (keys.length === 0) return out
    const raw = await this.rpc.call<unknown[]>('liststreamkeys', this.stream, keys, false)
    if (!Array.isArray(raw)) throw new RpcError('unexpected liststreamkeys reply', undefined, true)
    for (const r of raw as Array<Record<string, unknown>>) {
      if (typeof r?.key !== 'string' || !(Number(r.items) > 1)) continue
      const list = await this.byKey(r.key)
      const first = list.find(i => i.blockhash !== undefined && i.confirmations > 0)
      if (first) out.set(r.key, first.txid)
    }
    return out
  }

  /**
   * Where the stream's items in blocks from..to are: block height and hash
   * per block, and each keyed item's txid (no data is fetched). For a writer
   * that only needs to see its own batches confirmed.
   */
  async places(from: number, to: number): Promise<Array<{height: number; hash: string; items: Array<{key: string; txid: string}>}>> {
    for (let attempt = 0; ; attempt++) {
      const listed = await this.blocks(from, to)
      const byHash = new Map(listed.map(b => [b.hash, {height: b.height, hash: b.hash, items: [] as Array<{key: string; txid: string}>}]))
      const items = await this.items(from, to, false)
      if (items.some(i => !i.blockhash || !byHash.has(i.blockhash))) {
        if (attempt < 5) continue
        throw new RpcError(`the chain kept changing while blocks ${from}-${to} were read`, undefined, true)
      }
      for (const i of items) if (i.key) byHash.get(i.blockhash!)!.items.push({key: i.key, txid: i.txid})
      return [...byHash.values()].sort((a, b) => a.height - b.height)
    }
  }

  /**
   * Blocks from..to as PacioFS blocks. Retries when the chain changes under
   * the read (an item names a block hash the listed blocks do not have).
   */
  async range(from: number, to: number): Promise<RangeBlock[]> {
    for (let attempt = 0; ; attempt++) {
      const listed = await this.blocks(Math.max(0, from - 1), to)
      const byHash = new Map(listed.map(b => [b.hash, b]))
      const items = to >= from ? await this.items(from, to) : []
      const stray = items.find(i => !i.blockhash || !byHash.has(i.blockhash))
      if (stray) {
        if (attempt < 5) continue
        throw new RpcError(`the chain kept changing while blocks ${from}-${to} were read`, undefined, true)
      }
      const counts = new Map<string, number>()
      for (const i of items) if (i.key) counts.set(i.key, (counts.get(i.key) ?? 0) + 1)
      const first = await this.firstPlaces([...counts.keys()])
      const out = new Map<number, RangeBlock>()
      const prevOf = new Map(listed.map(b => [b.height, b.hash]))
      for (const b of listed) {
        if (b.height < from) continue
        const prevHash = b.height === 0 ? ZERO_HASH : (b.prevHash ?? prevOf.get(b.height - 1) ?? ZERO_HASH)
        out.set(b.height, {batches: [], block: {epoch: b.height, prevHash, time: Math.round(b.time * 1000),
          merkleRoot: b.merkleroot ?? ZERO_HASH, producer: b.miner ?? '', signature: '', hash: b.hash, txs: []}})
      }
      const perTx = new Map<string, number>() // payloads already numbered in each MultiChain transaction
      const delivered = new Set<string>()
      for (const item of items) {
        const rb = out.get(byHash.get(item.blockhash!)!.height)!
        const n = perTx.get(item.txid) ?? 0
        const firstTxid = item.key ? first.get(item.key) : undefined
        if (item.key && ((firstTxid !== undefined && firstTxid !== item.txid) || delivered.has(item.key))) continue // a copy of a batch already on the chain
        if (item.key) delivered.add(item.key)
        const payloads = item.data ? decodeFrame(item.data) : null
        const txs: Tx[] = payloads ? payloads.map((p, i) => ({txid: `${item.txid}:${n + i}`, payload: p}))
          : [{txid: `${item.txid}:${n}`, payload: item.data ?? Buffer.alloc(0)}] // foreign or damaged item: the layer above reports it
        perTx.set(item.txid, n + txs.length)
        if (item.key) rb.batches.push({key: item.key, txid: item.txid, first: rb.block.txs.length, count: txs.length})
        rb.block.txs.push(...txs)
      }
      return [...out.values()].sort((x, y) => x.block.epoch - y.block.epoch)
    }
  }
}
