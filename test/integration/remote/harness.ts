// An in-process `paciofs serve` (the real server, stacks and TLS) and raw
// clients, for tests that must send what no well-behaved client would.
import {mkdir} from 'node:fs/promises'
import {join} from 'node:path'
import * as grpc from '@grpc/grpc-js'
import {generateIdentity, saveIdentity, type Identity} from '../../../src/crypto/sign.js'
import {Connection} from '../../../src/remote/connection.js'
import {SESSION_METADATA} from '../../../src/remote/wire.js'
import {openAll, type Served} from '../../../src/server/served.js'
import {startServer, type RunningServer} from '../../../src/server/server.js'
import {loadOrCreateServerTls} from '../../../src/server/tls.js'

export interface Harness {
  address: string
  server: RunningServer
  volumes: Map<string, Served>
  owner: Identity
  dir: string
  connect(identity: Identity, volume: string): Promise<Connection>
  close(): Promise<void>
}

export async function newIdentity(dir: string, name: string): Promise<{identity: Identity; file: string}> {
  await mkdir(dir, {recursive: true})
  const file = join(dir, `${name}.key`)
  const identity = generateIdentity()
  saveIdentity(file, identity)
  return {identity, file}
}

export async function startHarness(dir: string, volumes: string[], opts: {maxHandles?: number} = {}): Promise<Harness> {
  const umask = process.umask() // opening a volume stack sets it to 0 (the mount's callers bring their own): give it back after
  const owner = await newIdentity(join(dir, 'keys'), 'owner')
  const tls = await loadOrCreateServerTls(join(dir, 'server'))
  const served = await openAll(volumes.map(v => join(dir, v)), {identity: owner.file})
  const server = await startServer({host: '127.0.0.1', port: 0, tls, volumes: served, maxHandles: opts.maxHandles ?? 1024})
  const address = `127.0.0.1:${server.port}`
  const conns: Connection[] = []
  return {
    address, server, volumes: served, owner: owner.identity, dir,
    async connect(identity, volume) {
      const c = new Connection({server: address, volume, identity, knownServersFile: join(dir, 'known-servers.json'), deadlineMs: 5_000})
      conns.push(c)
      await c.connect()
      return c
    },
    async close() {
      for (const c of conns) c.close()
      await server.stop()
      for (const v of served.values()) await v.stack.close()
      process.umask(umask)
    },
  }
}

/** The session token of a connection (what a thief would have to steal). */
export function tokenOf(c: Connection): string {
  return (c as unknown as {token: string}).token
}

/** A raw unary call with a given token on a connection's channel. */
export function rawCall(c: Connection, method: string, req: unknown, token?: string): Promise<Record<string, any>> {
  const meta = new grpc.Metadata()
  if (token) meta.set(SESSION_METADATA, token)
  return (c as unknown as {unary(m: string, r: unknown, md: grpc.Metadata, d: number): Promise<Record<string, any>>}).unary(method, req, meta, 5_000)
}
