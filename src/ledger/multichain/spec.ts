/**
 * `--chain` values:
 *   multichain://USER:PASS@HOST:PORT/CHAIN   an existing node's JSON-RPC API
 *   multichain:new                          a new chain with a local node in the volume's state dir
 *   multichain:CHAIN@HOST:PORT              a local node (state dir) that joins an existing chain
 *   embedded                                the embedded ledger (the default)
 */
import {PacioError} from '../../errors.js'

export type ChainSpec =
  | {kind: 'embedded'}
  | {kind: 'rpc'; host: string; port: number; user: string; pass: string; chain: string}
  | {kind: 'new'}
  | {kind: 'join'; chain: string; host: string; port: number}

const HELP = 'use multichain://USER:PASS@HOST:PORT/CHAIN (an existing node), multichain:new (a new chain on a local node) or multichain:CHAIN@HOST:PORT (a local node joining a chain)'

function port(s: string, what: string): number {
  const n = Number(s)
  if (!/^\d+$/.test(s) || n < 1 || n > 65535) throw new PacioError('EINPUT', `--chain: ${what} port ${JSON.stringify(s)} is not a port number`, {suggestion: HELP})
  return n
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/

export function parseChainSpec(s: string): ChainSpec {
  const v = s.trim()
  if (v === '' || v === 'embedded') return {kind: 'embedded'}
  if (v === 'multichain:new') return {kind: 'new'}
  if (v.startsWith('multichain://')) {
    let u: URL
    try {
      u = new URL(v.replace(/^multichain:/, 'http:'))
    } catch {
      throw new PacioError('EINPUT', `--chain: ${JSON.stringify(s)} is not a valid multichain:// address`, {suggestion: HELP})
    }
    const chain = decodeURIComponent(u.pathname.replace(/^\//, ''))
    if (!u.username || !u.password) throw new PacioError('EINPUT', '--chain: the RPC user and password are missing (multichain://USER:PASS@HOST:PORT/CHAIN)', {suggestion: 'they are rpcuser and rpcpassword in the chain\'s multichain.conf'})
    if (!u.port) throw new PacioError('EINPUT', '--chain: the RPC port is missing (multichain://USER:PASS@HOST:PORT/CHAIN)', {suggestion: 'it is default-rpc-port in the chain\'s params.dat'})
    if (!NAME.test(chain)) throw new PacioError('EINPUT', `--chain: missing or bad chain name ${JSON.stringify(chain)} after the port`, {suggestion: HELP})
    return {kind: 'rpc', host: u.hostname, port: port(u.port, 'RPC'), user: decodeURIComponent(u.username), pass: decodeURIComponent(u.password), chain}
  }
  const join = /^multichain:([^@/]+)@([^:@/]+):(\d+)$/.exec(v)
  if (join) {
    if (!NAME.test(join[1])) throw new PacioError('EINPUT', `--chain: bad chain name ${JSON.stringify(join[1])}`, {suggestion: HELP})
    return {kind: 'join', chain: join[1], host: join[2], port: port(join[3], 'network')}
  }
  throw new PacioError('EINPUT', `--chain: ${JSON.stringify(s)} is not a chain this paciofs knows`, {suggestion: HELP})
}

/** The spec as kept in volume.json and shown to users (the password masked with `mask`). */
export function formatChainSpec(c: ChainSpec, mask = false): string {
  switch (c.kind) {
    case 'embedded': return 'embedded'
    case 'new': return 'multichain:new'
    case 'join': return `multichain:${c.chain}@${c.host}:${c.port}`
    case 'rpc': return `multichain://${encodeURIComponent(c.user)}:${mask ? '***' : encodeURIComponent(c.pass)}@${c.host}:${c.port}/${c.chain}`
  }
}
