/**
 * The paciofs.v1.Replica service (proto/paciofs/v1/replica.proto), the
 * conversions between blocks and their messages, and a client channel to a
 * peer whose certificate is known (pinned by the operator for the primary,
 * named on the ledger by the server-join record for every other server).
 */
import {fileURLToPath} from 'node:url'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import {certFingerprint} from '../remote/auth.js'
import {pinnedClient} from '../remote/channel.js'
import {parseServer} from '../remote/connection.js'
import {fetchServerCert} from '../remote/known-servers.js'
import {PacioError} from '../errors.js'
import type {Block} from '../ledger/types.js'

export const REPLICA_SERVICE = 'paciofs.v1.Replica'
export const REPLICA_METADATA = 'paciofs-replica'
/** Preimages asked for in one call (a record is a few hundred bytes; a reply stays far below MAX_MESSAGE). */
export const PREIMAGE_BATCH = 1000
export const CONTENT_PIECE = 1024 * 1024

const PROTO = fileURLToPath(new URL('../../proto/paciofs/v1/replica.proto', import.meta.url))

let cached: grpc.ServiceDefinition | undefined
export function replicaDefinition(): grpc.ServiceDefinition {
  if (!cached) {
    const def = protoLoader.loadSync(PROTO, {keepCase: true, longs: Number, enums: String, defaults: true, oneofs: false})
    cached = def[REPLICA_SERVICE] as grpc.ServiceDefinition
    // a ContentPiece already framed in place (framedContent) is sent as it is
    const content = cached.Content as grpc.MethodDefinition<unknown, unknown>
    const encode = content.responseSerialize
    cached = {...cached, Content: {...content, responseSerialize: (piece: unknown) => (Buffer.isBuffer(piece) ? piece : encode(piece))}}
  }

  return cached
}

/** Bytes a ContentPiece's header takes at most: field 1's tag and the data's length as a varint (below 2^28). */
export const CONTENT_HEADER = 5

/**
 * The encoded ContentPiece message {data}, without copying `data`: its
 * header is written into the bytes just before `data` in its buffer, which
 * the caller keeps free (at least CONTENT_HEADER of them, see PipeOptions'
 * headroom). The same bytes as protobuf's encoding of {data}. gRPC copies
 * the message once more into its frame; protobuf's encoder would have made
 * a copy of its own first.
 */
export function framedContent(data: Buffer): Buffer {
  const header = [0x0a] // field 1, length-delimited
  for (let n = data.length; ; n = Math.floor(n / 128)) {
    if (n < 0x80) {
      header.push(n)
      break
    }

    header.push((n & 0x7f) | 0x80)
  }

  if (data.byteOffset < header.length) throw new PacioError('EINTERNAL', `framedContent: ${header.length} bytes are needed before the data, ${data.byteOffset} are there`)
  const message = Buffer.from(data.buffer, data.byteOffset - header.length, header.length + data.length)
  message.set(header, 0)
  return message
}

export interface BlockMsg {
  epoch: number
  prev_hash: string
  time: number
  merkle_root: string
  producer: string
  signature: string
  hash: string
  cp_signature: string
  txs: Array<{txid: string; payload: Buffer}>
}

export function blockToMsg(b: Block, cpSignature: string): BlockMsg {
  return {epoch: b.epoch, prev_hash: b.prevHash, time: b.time, merkle_root: b.merkleRoot, producer: b.producer, signature: b.signature, hash: b.hash,
    cp_signature: cpSignature, txs: b.txs.map(t => ({txid: t.txid, payload: t.payload}))}
}

export function blockFromMsg(m: BlockMsg): {block: Block; cpSignature: string} {
  return {
    block: {epoch: Number(m.epoch), prevHash: String(m.prev_hash), time: Number(m.time), merkleRoot: String(m.merkle_root), producer: String(m.producer),
      signature: String(m.signature), hash: String(m.hash), txs: (m.txs ?? []).map(t => ({txid: String(t.txid), payload: Buffer.from(t.payload ?? [])}))},
    cpSignature: String(m.cp_signature),
  }
}

export type ReplicaClient = grpc.Client & Record<string, Function>

/**
 * A channel to a peer's Replica service, trusting exactly the certificate
 * with this fingerprint (sha256 hex of its DER). The certificate itself is
 * fetched from the peer and checked against the fingerprint first.
 */
export async function openReplicaClient(address: string, fingerprint: string, certPem?: string): Promise<ReplicaClient> {
  const {host, port} = parseServer(address)
  let pem = certPem
  if (!pem) {
    const got = await fetchServerCert(host, port, 3_000)
    const fp = certFingerprint(got.der).toString('hex')
    if (fp !== fingerprint) {
      throw new PacioError('ETAMPER', `the server at ${address} presents certificate ${fp.slice(0, 16)}…, the ledger names ${fingerprint.slice(0, 16)}…`)
    }

    pem = got.pem
  }

  return pinnedClient(replicaDefinition(), REPLICA_SERVICE, host, port, pem, fingerprint) as ReplicaClient
}

export function unary<T = Record<string, any>>(client: ReplicaClient, method: string, req: unknown, meta = new grpc.Metadata(), deadlineMs = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    client[method].call(client, req, meta, {deadline: Date.now() + deadlineMs}, (err: grpc.ServiceError | null, reply: T) => (err ? reject(err) : resolve(reply)))
  })
}
