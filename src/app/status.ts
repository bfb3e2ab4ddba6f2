/**
 * `paciofs status`, `paciofs member accept` and `paciofs leave`: a served
 * volume's group of servers as the server at HOST:PORT sees it (members,
 * servers, how far each has applied the ledger, lag), a member's vote for a
 * server that asked to join, and a server leaving the group.
 */
import * as grpc from '@grpc/grpc-js'
import {PacioError} from '../errors.js'
import {parseServer} from '../remote/connection.js'
import {fetchServerCert, pinServer} from '../remote/known-servers.js'
import {Peer} from '../replica/peers.js'
import {checkMemberKey} from '../server/members.js'
import {openReplicaClient, unary} from '../replica/wire.js'
import {loadOrCreateIdentity} from './identity.js'
import {knownServersFile} from './remote-mount.js'

export interface ServerRow {
  key: string
  address: string
  state: string
  applied: number | null
  lag: number | null
  seenAgoMs: number | null
}

export interface StatusResult {
  server: string
  volume: string
  volumeId: string
  role: string
  head: number
  primaryHead: number
  accept: string
  members: string[]
  servers: ServerRow[]
}

async function pinned(server: string, trustNew?: boolean): Promise<{fingerprint: string; cert: string}> {
  const {host, port} = parseServer(server)
  let got
  try {
    got = await fetchServerCert(host, port)
  } catch (error) {
    throw new PacioError('EINPUT', `cannot reach a PacioFS server at ${server}: ${(error as Error).message}`, {cause: error})
  }

  const p = pinServer(knownServersFile(), `${host}:${port}`, got, {trustNew})
  return {fingerprint: p.fingerprint, cert: p.cert}
}

const message = (e: unknown) => (e as grpc.ServiceError)?.details || (e as Error).message

export async function runStatus(req: {server: string; volume: string; trustNewServerKey?: boolean}): Promise<StatusResult> {
  const pin = await pinned(req.server, req.trustNewServerKey)
  const client = await openReplicaClient(req.server, pin.fingerprint, pin.cert)
  try {
    const r = await unary(client, 'Status', {volume: req.volume}, undefined, 10_000).catch(error => {
      throw new PacioError('EINPUT', `${req.server}: ${message(error)}`, {cause: error})
    })
    const now = Date.now()
    const head = Number(r.primary_head)
    return {
      server: req.server, volume: r.volume, volumeId: r.volume_id, role: r.role, head: Number(r.head), primaryHead: head, accept: r.accept, members: r.members ?? [],
      servers: (r.servers ?? []).map((s: Record<string, any>) => {
        const applied = Number(s.applied)
        const known = applied >= 0 && (s.state === 'primary' || s.state === 'accepted')
        return {key: s.key, address: s.address, state: s.state, applied: known ? applied : null, lag: known ? Math.max(0, head - applied) : null,
          seenAgoMs: Number(s.seen_ms) > 0 ? Math.max(0, now - Number(s.seen_ms)) : null}
      }),
    }
  } finally {
    client.close()
  }
}

export async function runAccept(req: {server: string; volume: string; key: string; identity?: string; trustNewServerKey?: boolean}): Promise<{state: string}> {
  const key = checkMemberKey(req.key)
  const identity = loadOrCreateIdentity(req.identity)
  const pin = await pinned(req.server, req.trustNewServerKey)
  const peer = new Peer({key: '', address: req.server, ...pin}, identity, req.volume)
  try {
    const r = await peer.call<{state: string}>('Vote', {vote: 'accept', server: key}).catch(error => {
      throw new PacioError((error as grpc.ServiceError).code === grpc.status.PERMISSION_DENIED ? 'EPERM' : 'EINPUT', `${req.server}: ${message(error)}`, {cause: error})
    })
    return {state: r.state}
  } finally {
    peer.close()
  }
}

/**
 * The server whose key is `identity` leaves the group of `volume` (LEAVE,
 * recorded on the ledger through the primary). Its replica stops following
 * and serving; its directory stays as it is.
 */
export async function runLeave(req: {server: string; volume: string; identity?: string; trustNewServerKey?: boolean}): Promise<{server: string; state: string}> {
  if (!req.volume.trim()) throw new PacioError('EINPUT', '--volume must name the served volume')
  const identity = loadOrCreateIdentity(req.identity)
  const pin = await pinned(req.server, req.trustNewServerKey)
  const peer = new Peer({key: '', address: req.server, ...pin}, identity, req.volume)
  try {
    const r = await peer.call<{state: string}>('Vote', {vote: 'leave', server: identity.pid}).catch(error => {
      const denied = (error as grpc.ServiceError).code === grpc.status.PERMISSION_DENIED
      throw new PacioError(denied ? 'EPERM' : 'EINPUT', `${req.server}: ${message(error)}`, {cause: error,
        suggestion: denied ? 'run it with the key the server joined with (--identity, as given to `paciofs join`)' : undefined})
    })
    return {server: identity.pid, state: r.state}
  } finally {
    peer.close()
  }
}
