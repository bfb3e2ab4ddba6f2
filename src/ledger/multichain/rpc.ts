/**
 * MultiChain's JSON-RPC API through `multichain-node`'s HTTP client, with
 * every failure turned into a PacioError that says what happened and whether
 * waiting helps (`retryable`). multichaind answers 200 with {result, error,
 * id}, 401 with an HTML page for bad credentials, and 500 (404 for an unknown
 * method) with the JSON-RPC error object for a failed call.
 */
import {createRequire} from 'node:module'
import {PacioError} from '../../errors.js'

const require = createRequire(import.meta.url)
type Callback = (err: unknown, res?: unknown) => void
type RawClient = {call(method: string, params: unknown[], cb: Callback): void}
/** Loaded on first use: commands on an embedded-ledger volume (cat, log, history) never pay for it. */
const makeClient = (c: {host: string; port: number; user?: string; pass?: string}): RawClient =>
  (require('multichain-node/lib/client.js') as (c: {host: string; port: number; user?: string; pass?: string}) => RawClient)(c)

export interface RpcConfig {
  host: string
  port: number
  user: string
  pass: string
  /** the chain's name, for messages */
  chain: string
}

/** MultiChain's error codes this driver reacts to (rpcprotocol.h names). */
export const RPC = {
  IN_WARMUP: -28, // RPC_IN_WARMUP: still loading / rescanning
  NOT_SUBSCRIBED: -703,
  INSUFFICIENT_PERMISSIONS: -704, // also "No unspent output with create permission" before the first blocks
  DUPLICATE_NAME: -705,
  UNCONFIRMED_ENTITY: -706,
  ENTITY_NOT_FOUND: -708,
  TX_NOT_FOUND: -710,
  BLOCK_NOT_FOUND: -711,
  OUTPUT_NOT_FOUND: -712,
  METHOD_NOT_FOUND: -32601,
} as const

export class RpcError extends PacioError {
  constructor(message: string, readonly rpcCode: number | undefined, readonly retryable: boolean, opts: {suggestion?: string; cause?: unknown} = {}) {
    super('ELEDGER', message, {...opts, details: {rpcCode}})
    this.name = 'RpcError'
  }
}

/** True for an error that waiting may cure (node restarting, warming up, not yet funded). */
export function isRetryable(error: unknown): boolean {
  return error instanceof RpcError && error.retryable
}

export function where(c: RpcConfig): string {
  return `MultiChain node ${c.host}:${c.port} (chain ${c.chain})`
}

/** Turns whatever multichain-node's client reported into a clear RpcError. */
export function mapError(c: RpcConfig, method: string, err: unknown): RpcError {
  const at = where(c)
  if (typeof err === 'string') {
    // a non-JSON HTTP reply: multichaind's 401 page, or something that is not multichaind at all
    if (/401|unauthori[sz]ed|authorization required/i.test(err)) {
      return new RpcError(`${at}: the RPC user name or password was refused (HTTP 401)`, undefined, false,
        {suggestion: 'use the rpcuser and rpcpassword from the chain\'s multichain.conf (e.g. ~/.multichain/<chain>/multichain.conf)'})
    }
    if (/403|forbidden/i.test(err)) {
      return new RpcError(`${at}: this address may not use the RPC API (HTTP 403)`, undefined, false,
        {suggestion: 'add -rpcallowip=<this host> to the node\'s multichain.conf'})
    }
    return new RpcError(`${at}: unexpected reply to ${method}: ${err.slice(0, 200)}`, undefined, true)
  }
  const e = err as {code?: unknown; message?: unknown; errno?: unknown}
  if (e && typeof e.code === 'string') {
    const sys = e.code
    if (sys === 'ECONNREFUSED') return new RpcError(`${at}: connection refused (is multichaind running and is its RPC port ${c.port}?)`, undefined, true)
    if (sys === 'ECONNRESET' || sys === 'EPIPE' || sys === 'ETIMEDOUT' || sys === 'EHOSTUNREACH' || sys === 'ENETUNREACH' || sys === 'EAI_AGAIN') {
      return new RpcError(`${at}: ${sys} during ${method}`, undefined, true)
    }
    if (sys === 'ENOTFOUND') return new RpcError(`${at}: host ${c.host} not found`, undefined, false)
    return new RpcError(`${at}: ${method} failed: ${String(e.message ?? sys)}`, undefined, true, {cause: err})
  }
  if (e && typeof e.code === 'number') {
    const code = e.code
    const msg = typeof e.message === 'string' ? e.message : ''
    switch (code) {
      case RPC.IN_WARMUP:
        return new RpcError(`${at}: the node is still starting (${msg})`, code, true)
      case RPC.NOT_SUBSCRIBED:
        return new RpcError(`${at}: not subscribed to the stream (${msg})`, code, false, {suggestion: 'the driver subscribes at open; was the node restarted with -reindex?'})
      case RPC.ENTITY_NOT_FOUND:
        return new RpcError(`${at}: stream not found (${msg})`, code, false,
          {suggestion: 'is this the chain the volume was created on? `paciofs mount` creates the stream; log and verify need it to exist'})
      case RPC.INSUFFICIENT_PERMISSIONS:
        if (/unspent/i.test(msg)) return new RpcError(`${at}: no spendable output yet (${msg}); waiting for the first blocks`, code, true)
        return new RpcError(`${at}: insufficient permissions for ${method} (${msg})`, code, false,
          {suggestion: 'ask the chain\'s admin to grant this node\'s address the permission, e.g. `grant <address> create,send` or `grant <address> <stream>.write`'})
      case RPC.UNCONFIRMED_ENTITY:
        return new RpcError(`${at}: the stream is not confirmed yet (${msg})`, code, true)
      case RPC.METHOD_NOT_FOUND:
        return new RpcError(`${at}: the node does not know ${method}; PacioFS needs MultiChain 1.0 or later`, code, false)
      default:
        return new RpcError(`${at}: ${method} failed: ${msg} (code ${code})`, code, false)
    }
  }
  return new RpcError(`${at}: ${method} failed: ${String(err)}`, undefined, true)
}

export class RpcClient {
  private readonly raw: RawClient
  constructor(readonly config: RpcConfig, private readonly timeoutMs = 30_000) {
    this.raw = makeClient({host: config.host, port: config.port, user: config.user, pass: config.pass})
  }

  call<T = unknown>(method: string, ...params: unknown[]): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false
      const timer = setTimeout(() => {
        settled = true
        reject(new RpcError(`${where(this.config)}: no answer to ${method} within ${this.timeoutMs / 1000}s`, undefined, true))
      }, this.timeoutMs)
      try {
        this.raw.call(method, params, (err, res) => {
          if (settled) return
          settled = true
          clearTimeout(timer)
          if (err !== null && err !== undefined) reject(mapError(this.config, method, err))
          else resolve(res as T)
        })
      } catch (error) {
        settled = true
        clearTimeout(timer)
        reject(mapError(this.config, method, error))
      }
    })
  }
}
