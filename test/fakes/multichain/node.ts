/**
 * A fake `multichaind` JSON-RPC endpoint over HTTP for the driver's tests:
 * basic auth (HTTP 401 with an HTML page on bad credentials, as multichaind),
 * JSON-RPC 1.0 envelopes {result, error, id}, HTTP 500 with the error object
 * for a failed call (404 for an unknown method), -28 while warming up after a
 * (re)start, and a publish rate limit that models a node's transactions per
 * second. Not more forgiving than the real node: reads need a subscription
 * (-703), unknown streams are -708, and create/publish answer -704 until the
 * chain's first blocks are mined.
 */
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import {FakeChain, RpcFault, ADDRESS, type Mode} from './chain.js'

export interface FakeNodeOptions {
  mode?: Mode
  chainName?: string
  user?: string
  pass?: string
  /** mine a block every blockTimeMs (0: only on demand) */
  blockTimeMs?: number
  /** publish transactions per second the node accepts (default 1500; 0 = unlimited) */
  txPerSecond?: number
  /** -28 answers for this long after each start (ms) */
  warmupMs?: number
  /** blocks already mined at start (default 1: funded at once; 0: a fresh chain answering -704 to create) */
  premine?: number
  /** a chain to start from (the fake daemon's saved state) */
  chain?: FakeChain
  /** the `stop` RPC: answered, then this runs (the fake daemon exits) */
  onStop?: () => void
}

export class FakeMultiChainNode {
  readonly chain: FakeChain
  readonly user: string
  readonly pass: string
  port = 0
  /** calls answered, by method */
  readonly calls = new Map<string, number>()
  private server?: http.Server
  private readonly sockets = new Set<import('node:net').Socket>()
  private timer?: NodeJS.Timeout
  private warmUntil = 0
  private nextTxAt = 0
  private readonly txGapMs: number
  private readonly opts: FakeNodeOptions

  constructor(opts: FakeNodeOptions = {}) {
    this.opts = opts
    this.chain = opts.chain ?? new FakeChain({name: opts.chainName, mode: opts.mode})
    if (!opts.chain) this.chain.mine(opts.premine ?? 1)
    this.user = opts.user ?? 'multichainrpc'
    this.pass = opts.pass ?? 'fake-secret'
    const rate = opts.txPerSecond ?? 1500
    this.txGapMs = rate > 0 ? 1000 / rate : 0
  }

  get rpc() {
    return {host: '127.0.0.1', port: this.port, user: this.user, pass: this.pass, chain: this.chain.name}
  }

  get url(): string {
    return `multichain://${this.user}:${this.pass}@127.0.0.1:${this.port}/${this.chain.name}`
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => void this.handle(req, res))
    this.server.on('connection', s => {
      this.sockets.add(s)
      s.on('close', () => this.sockets.delete(s))
    })
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject)
      this.server!.listen(this.port, '127.0.0.1', () => resolve())
    })
    this.port = (this.server.address() as AddressInfo).port
    this.warmUntil = Date.now() + (this.opts.warmupMs ?? 0)
    if (this.opts.blockTimeMs) this.timer = setInterval(() => this.chain.mine(), this.opts.blockTimeMs)
    return this
  }

  /** The node goes away: connections are cut, the port refuses. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
    const s = this.server
    this.server = undefined
    if (!s) return
    for (const sock of this.sockets) sock.destroy()
    await new Promise<void>(resolve => s.close(() => resolve()))
  }

  /** Stop, stay away for downMs, start again on the same port (optionally without the mempool). */
  async restart(downMs = 0, opts: {dropMempool?: boolean} = {}): Promise<void> {
    await this.stop()
    if (opts.dropMempool) this.chain.dropMempool()
    if (downMs > 0) await new Promise(resolve => setTimeout(resolve, downMs))
    await this.start()
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const auth = req.headers.authorization ?? ''
    const expected = 'Basic ' + Buffer.from(`${this.user}:${this.pass}`).toString('base64')
    if (auth !== expected) {
      res.writeHead(401, {'Content-Type': 'text/html', 'WWW-Authenticate': 'Basic realm="jsonrpc"'})
      res.end('<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">\n<HTML><HEAD><TITLE>Error</TITLE></HEAD><BODY><H1>401 Unauthorized.</H1></BODY></HTML>\n')
      return
    }
    let body = ''
    for await (const chunk of req) body += chunk
    let request: {method?: unknown; params?: unknown; id?: unknown}
    try {
      request = JSON.parse(body)
    } catch {
      this.reply(res, 500, null, {code: -32700, message: 'Parse error'}, null)
      return
    }
    const id = request.id ?? null
    if (typeof request.method !== 'string') {
      this.reply(res, 400, null, {code: -32600, message: 'Method must be a string'}, id)
      return
    }
    const params = Array.isArray(request.params) ? request.params : []
    this.calls.set(request.method, (this.calls.get(request.method) ?? 0) + 1)
    try {
      if (Date.now() < this.warmUntil) throw new RpcFault(-28, 'Loading block index...')
      const result = await this.dispatch(request.method, params)
      this.reply(res, 200, result, null, id)
    } catch (error) {
      if (error instanceof RpcFault) this.reply(res, error.code === -32601 ? 404 : 500, null, {code: error.code, message: error.message}, id)
      else this.reply(res, 500, null, {code: -1, message: String((error as Error).message)}, id)
    }
  }

  private reply(res: http.ServerResponse, status: number, result: unknown, error: unknown, id: unknown): void {
    const text = JSON.stringify({result, error, id}) + '\n'
    res.writeHead(status, {'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text)})
    res.end(text)
  }

  private async paceTx(): Promise<void> {
    if (this.txGapMs === 0) return
    const now = performance.now()
    const at = Math.max(now, this.nextTxAt)
    this.nextTxAt = at + this.txGapMs
    if (at - now >= 1) await new Promise(resolve => setTimeout(resolve, at - now))
  }

  private page<T>(list: T[], count: unknown, start: unknown, defaultCount: number): T[] {
    const n = typeof count === 'number' ? count : defaultCount
    let s = typeof start === 'number' ? start : -n
    if (s < 0) s = Math.max(0, list.length + s)
    return list.slice(s, s + n)
  }

  private async dispatch(method: string, p: unknown[]): Promise<unknown> {
    const c = this.chain
    const tip = c.blocks[c.height]
    switch (method) {
      case 'getinfo':
        return {version: c.mode === '1.0' ? '1.0.8' : '2.0.7', nodeversion: c.mode === '1.0' ? 10008901 : 20007901, protocolversion: c.mode === '1.0' ? 10011 : 20013,
          chainname: c.name, description: `MultiChain ${c.name}`, protocol: 'multichain', port: 0, setupblocks: 60, nodeaddress: `${c.name}@127.0.0.1:0`,
          burnaddress: '1XXXXXXXXXXXXXXXXXXXXXXXXXXXXXX', incomingpaused: false, miningpaused: false, walletversion: 60000, balance: 0, walletdbversion: 2,
          reindex: false, blocks: c.height, timeoffset: 0, connections: 0, proxy: '', difficulty: 6e-8, testnet: false, keypoololdest: tip.time, keypoolsize: 2,
          paytxfee: 0, relayfee: 0, errors: ''}
      case 'getblockchaininfo':
        return {chain: 'main', chainname: c.name, description: `MultiChain ${c.name}`, protocol: 'multichain', setupblocks: 60, reindex: false,
          blocks: c.height, headers: c.height + c.syncLag, bestblockhash: tip.hash, difficulty: 6e-8, verificationprogress: 1, chainwork: '00'.repeat(32)}
      case 'liststreams': {
        const names = p[0] === undefined || p[0] === '*' ? [...c.txs.values()].filter(t => t.creates).map(t => t.creates!) : Array.isArray(p[0]) ? p[0] : [p[0]]
        return names.map(n => {
          const tx = c.requireStream(n)
          const b = c.blockOf(tx.txid)
          const items = c.streamItems(n as string)
          const out: Record<string, unknown> = {name: n, createtxid: tx.txid, streamref: b ? `${b.height}-${b.txids.indexOf(tx.txid) * 265 + 10}-${parseInt(tx.txid.slice(0, 4), 16)}` : '',
            open: true, details: {}, subscribed: c.subscribed.has(n as string)}
          if (c.mode === '2.0') out.restrict = {write: false, onchain: false, offchain: false}
          if (c.subscribed.has(n as string)) {
            out.synchronized = true
            out.items = items.length
            out.confirmed = items.filter(i => i.block).length
            out.keys = new Set(items.flatMap(i => i.item.keys)).size
            out.publishers = items.length > 0 ? 1 : 0
          }
          return out
        })
      }
      case 'create':
        await this.paceTx()
        return c.create(p[0], p[1], p[2])
      case 'subscribe': {
        const names = Array.isArray(p[0]) ? p[0] : [p[0]]
        for (const n of names) c.requireStream(n)
        for (const n of names) c.subscribed.add(n as string)
        return null
      }
      case 'publish':
        await this.paceTx()
        return c.publish(p[0], p[1], p[2])
      case 'liststreamitems': {
        c.requireSubscribed(p[0])
        return this.page(c.streamItems(p[0] as string), p[2], p[3], 10).map(e => c.render(e))
      }
      case 'liststreamkeyitems': {
        c.requireSubscribed(p[0])
        if (typeof p[1] !== 'string') throw new RpcFault(-8, 'Invalid key')
        return this.page(c.streamItems(p[0] as string).filter(e => e.item.keys.includes(p[1] as string)), p[3], p[4], 10).map(e => c.render(e))
      }
      case 'liststreamblockitems': {
        c.requireSubscribed(p[0])
        const all = c.streamItems(p[0] as string, c.blockSet(p[1]))
        return this.page(all, p[3], p[4], Number.MAX_SAFE_INTEGER).map(e => c.render(e))
      }
      case 'liststreamkeys': {
        c.requireSubscribed(p[0])
        const items = c.streamItems(p[0] as string)
        const wanted = p[1] === undefined || p[1] === '*' ? [...new Set(items.flatMap(i => i.item.keys))] : Array.isArray(p[1]) ? p[1] : [p[1]]
        const out: unknown[] = []
        for (const k of wanted) {
          const withKey = items.filter(i => i.item.keys.includes(k as string))
          if (withKey.length === 0) continue
          out.push({key: k, items: withKey.length, confirmed: withKey.filter(i => i.block).length})
        }
        return out
      }
      case 'listblocks': {
        const verbose = p[1] === true
        return c.blockSet(p[0]).map(h => this.blockInfo(h, verbose, false))
      }
      case 'getblock': {
        const [h] = c.blockSet(p[0])
        if (p[1] === false || p[1] === 0) return Buffer.from(JSON.stringify(c.blocks[h])).toString('hex')
        return this.blockInfo(h, true, true)
      }
      case 'gettxoutdata': {
        const tx = typeof p[0] === 'string' ? c.txs.get(p[0]) : undefined
        if (!tx) throw new RpcFault(-710, 'No information available about transaction')
        const item = tx.items.find(i => i.vout === p[1])
        if (!item) throw new RpcFault(-712, 'Output not found')
        const bytes = c.dataBytes(item)
        const start = typeof p[3] === 'number' ? p[3] : 0
        const count = typeof p[2] === 'number' ? p[2] : bytes.length
        if (start < 0 || start > bytes.length) throw new RpcFault(-8, 'Invalid start, must be below data size')
        return bytes.subarray(start, start + count).toString('hex')
      }
      case 'getaddresses':
        return [ADDRESS]
      case 'stop':
        setTimeout(() => this.opts.onStop?.(), 50)
        return 'MultiChain server stopping'
      default:
        throw new RpcFault(-32601, 'Method not found')
    }
  }

  private blockInfo(h: number, verbose: boolean, withTx: boolean): Record<string, unknown> {
    const c = this.chain
    const b = c.blocks[h]
    const out: Record<string, unknown> = {hash: b.hash, miner: b.miner, confirmations: c.height - h + 1, height: h, time: b.time, txcount: b.txids.length + 1}
    if (verbose) {
      Object.assign(out, {size: 300 + b.txids.length * 250, version: 3, merkleroot: b.hash.split('').reverse().join(''), nonce: h, bits: '2000ffff', difficulty: 6e-8,
        chainwork: h.toString(16).padStart(64, '0')})
      if (h > 0) out.previousblockhash = b.prev
      if (h < c.height) out.nextblockhash = c.blocks[h + 1].hash
      if (withTx) out.tx = [b.hash.slice(0, 64), ...b.txids]
    }
    return out
  }
}
