// A replica server that lies: it joins a volume's group properly (a signed
// JOIN, accepted by the primary), then answers every request for record
// preimages or content with bytes that do not match the ledger. For the
// test that an honest replica detects it, votes it out and still converges.
import {randomBytes} from 'node:crypto'
import {join} from 'node:path'
import * as grpc from '@grpc/grpc-js'
import {generateIdentity} from '../../src/crypto/sign.js'
import {signJoin} from '../../src/replica/statements.js'
import {openReplicaClient, replicaDefinition, unary} from '../../src/replica/wire.js'
import {loadOrCreateServerTls} from '../../src/server/tls.js'

export interface EvilPeer {
  key: string
  address: string
  asked: {preimages: number; content: number}
  close(): Promise<void>
}

export async function startEvilPeer(dir: string, primary: {address: string; fingerprint: string; cert: string}, volume: string): Promise<EvilPeer> {
  const identity = generateIdentity()
  const tls = await loadOrCreateServerTls(join(dir, 'evil-server'))
  const asked = {preimages: 0, content: 0}
  const server = new grpc.Server()
  server.addService(replicaDefinition(), {
    Nonce: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, {nonce: randomBytes(32)}),
    Attach: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, {token: 'anything', volume_id: ''}),
    Preimages: (call: grpc.ServerUnaryCall<{hashes: Buffer[]}, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      asked.preimages++
      cb(null, {preimages: call.request.hashes.map(hash => ({hash, salt: randomBytes(32), record: Buffer.from('{"op":"create","path":"/evil"}'), found: true}))})
    },
    Content: (call: grpc.ServerWritableStream<{digest: string}, unknown>) => {
      asked.content++
      call.write({data: randomBytes(1000)})
      call.end()
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
