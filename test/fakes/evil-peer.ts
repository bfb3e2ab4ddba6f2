// A replica server that lies: it joins a volume's group properly (a signed
// JOIN, accepted by the primary), then answers every request for record
// preimages or content with bytes that do not match the ledger. For the
// test that an honest replica detects it, votes it out and still converges.
//
// With `forge`, it lies only about content, and cleverly: it answers
// Preimages with "not found" (the replica asks the next peer), and serves
// each version with one byte of one chunk altered, sent with marks made from
// the altered bytes, so that every step but the last checks out.
import {randomBytes} from 'node:crypto'
import {join} from 'node:path'
import * as grpc from '@grpc/grpc-js'
import {generateIdentity} from '../../src/crypto/sign.js'
import {stepNow, type ChainState} from '../../src/history/sha256.js'
import {CHUNK_SIZE} from '../../src/history/store.js'
import {signJoin} from '../../src/replica/statements.js'
import {openReplicaClient, replicaDefinition, unary} from '../../src/replica/wire.js'
import {loadOrCreateServerTls} from '../../src/server/tls.js'

export interface EvilPeer {
  key: string
  address: string
  /** forged: versions served altered (with marks that fit the altered bytes) */
  asked: {preimages: number; content: number; forged: number}
  close(): Promise<void>
}

/** The hash states after each chunk of `data` but the last: marks that fit these bytes. */
export function marksFor(data: Buffer): Buffer {
  const out: Buffer[] = []
  let state: ChainState = null
  for (let at = 0; at + CHUNK_SIZE < data.length; at += CHUNK_SIZE) out.push(state = stepNow(data.subarray(at, at + CHUNK_SIZE), state, at, false))
  return Buffer.concat(out)
}

export interface ForgeOptions {
  /** the true bytes of a version (the evil peer alters them), undefined if unknown */
  content(digest: string): Promise<Buffer | undefined>
}

export async function startEvilPeer(dir: string, primary: {address: string; fingerprint: string; cert: string}, volume: string, forge?: ForgeOptions): Promise<EvilPeer> {
  const identity = generateIdentity()
  const tls = await loadOrCreateServerTls(join(dir, 'evil-server'))
  const asked = {preimages: 0, content: 0, forged: 0}
  const server = new grpc.Server()
  server.addService(replicaDefinition(), {
    Nonce: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, {nonce: randomBytes(32)}),
    Attach: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, {token: 'anything', volume_id: ''}),
    Preimages: (call: grpc.ServerUnaryCall<{hashes: Buffer[]}, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      asked.preimages++
      if (forge) return cb(null, {preimages: call.request.hashes.map(hash => ({hash, found: false}))})
      cb(null, {preimages: call.request.hashes.map(hash => ({hash, salt: randomBytes(32), record: Buffer.from('{"op":"create","path":"/evil"}'), found: true}))})
    },
    Content: (call: grpc.ServerWritableStream<{digest: string; marks?: boolean}, unknown>) => {
      asked.content++
      void (async () => {
        const data = forge ? await forge.content(call.request.digest) : undefined
        if (!data) {
          call.write({data: randomBytes(1000)})
        } else {
          const bad = Buffer.from(data)
          bad[Math.min(bad.length - 1, CHUNK_SIZE + 100)] ^= 0x20 // in the second chunk, if there is one
          if (call.request.marks) call.write({marks: marksFor(bad)})
          for (let at = 0; at < bad.length; at += CHUNK_SIZE) call.write({data: bad.subarray(at, at + CHUNK_SIZE)})
          asked.forged++
        }

        call.end()
      })()
    },
    Xattr: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, {found: true, value: Buffer.from('wrong')}),
    Follow: (call: grpc.ServerWritableStream<unknown, unknown>) => call.end(),
    Vote: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, {state: 'accepted'}),
    Applied: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, {}),
    Join: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb({code: grpc.status.FAILED_PRECONDITION, details: 'no'} as grpc.ServiceError),
    Status: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb({code: grpc.status.NOT_FOUND, details: 'no'} as grpc.ServiceError),
  })
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createSsl(null, [{private_key: tls.key, cert_chain: tls.cert}], false),
    (err, p) => (err ? reject(err) : resolve(p))))
  const address = `127.0.0.1:${port}`

  // join the group like an honest server would
  const client = await openReplicaClient(primary.address, primary.fingerprint, primary.cert)
  try {
    const st = await unary(client, 'Status', {volume})
    const signed = signJoin(identity, {volumeId: st.volume_id, address, fingerprint: tls.fingerprint.toString('hex'), at: Date.now()})
    const r = await unary(client, 'Join', {volume, server: identity.pid, address, fingerprint: tls.fingerprint.toString('hex'), at: signed.statement.at, signature: Buffer.from(signed.proof, 'hex')})
    if (r.state !== 'accepted') throw new Error(`the evil peer was not accepted: ${r.state}`)
  } finally {
    client.close()
  }

  return {
    key: identity.pid, address, asked,
    close: () => new Promise(resolve => server.tryShutdown(() => resolve())),
  }
}
