/**
 * The paciofs.v1.Replica service: joining, votes, and what peers fetch from
 * each other (blocks, record preimages, content, xattr values), on the
 * primary and on every replica. Access: see the header of replica.proto.
 */
import {createHash, randomBytes} from 'node:crypto'
import {once} from 'node:events'
import * as grpc from '@grpc/grpc-js'
import {verify} from '../crypto/sign.js'
import {PacioError} from '../errors.js'
import {pipeVersion} from '../history/reader.js'
import {transcript} from '../remote/auth.js'
import {Sessions} from '../server/sessions.js'
import {sys} from '../volume/sys.js'
import {PathResolver} from '../volume/paths.js'
import type {ReplicaHost} from './host.js'
import {verifyJoin} from './statements.js'
import {blockToMsg, CONTENT_HEADER, framedContent, PREIMAGE_BATCH, REPLICA_METADATA} from './wire.js'

type Status = Error & {code: grpc.status; details: string}
const status = (code: grpc.status, details: string): Status => Object.assign(new Error(details), {code, details})
const PID = /^[0-9a-f]{64}$/
/** chunks of a version being sent that are read ahead or on their way (4 MiB) */
const CONTENT_SLOTS = 16

interface Attached {
  key: string
  peer: string
  host: ReplicaHost
}

type R = Record<string, any>

export class ReplicaService {
  private readonly nonces = new Sessions()
  private readonly attached = new Map<string, Attached>()
  private readonly votes = new Map<ReplicaHost, Promise<unknown>>()
  private readonly streams = new Set<grpc.ServerWritableStream<unknown, unknown>>()

  constructor(private readonly hosts: Map<string, ReplicaHost>, private readonly fingerprint: Buffer, private readonly onEvent?: (m: string) => void) {}

  /** Ends the Follow streams (a server that stops). */
  stop(): void {
    for (const s of this.streams) s.end()
    this.streams.clear()
  }

  /** The statement's form for the transcript: a replica attach cannot be replayed as a Volume session. */
  static transcriptVolume(name: string): string {
    return `replica/${name}`
  }

  private host(name: unknown): ReplicaHost {
    const h = this.hosts.get(String(name))
    if (!h) throw status(grpc.status.NOT_FOUND, `no volume named ${JSON.stringify(String(name)).slice(0, 80)} on this server`)
    return h
  }

  private auth(call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>, who: 'server' | 'any'): Attached {
    const token = call.metadata.get(REPLICA_METADATA)[0]
    const a = typeof token === 'string' ? this.attached.get(token) : undefined
    if (!a) throw status(grpc.status.UNAUTHENTICATED, 'not attached: call Attach first')
    if (a.peer !== call.getPeer()) throw status(grpc.status.UNAUTHENTICATED, `this token belongs to another connection (${a.peer}, not ${call.getPeer()})`)
    const server = a.host.servers.isAccepted(a.key)
    if (!server && !(who === 'any' && a.host.isMember(a.key))) throw status(grpc.status.PERMISSION_DENIED, `${a.key.slice(0, 16)}… is not an accepted server of volume ${a.host.name}`)
    return a
  }

  private unary(fn: (call: grpc.ServerUnaryCall<R, unknown>) => Promise<unknown>): grpc.handleUnaryCall<R, unknown> {
    return (call, callback) => {
      fn(call).then(reply => callback(null, reply), error => {
        if (typeof (error as Status).code === 'number' && typeof (error as Status).details === 'string') return callback(error as grpc.ServiceError)
        const msg = (error as Error).message ?? String(error)
        if (!(error instanceof PacioError)) this.onEvent?.(`replica service: ${msg}`)
        callback(status(error instanceof PacioError ? grpc.status.FAILED_PRECONDITION : grpc.status.INTERNAL, msg) as grpc.ServiceError)
      })
    }
  }

  /** Membership decisions of one volume run one at a time. */
  private serial<T>(h: ReplicaHost, work: () => Promise<T>): Promise<T> {
    const next = (this.votes.get(h) ?? Promise.resolve()).then(work, work)
    this.votes.set(h, next.catch(() => {}))
    return next
  }

  private standing(h: ReplicaHost, key: string, detail = ''): R {
    return {state: h.servers.get(key)?.state ?? (key === h.servers.primary ? 'accepted' : 'unknown'), volume_id: h.volumeId, primary: h.servers.primary, detail}
  }

  private primaryOnly(h: ReplicaHost): void {
    if (h.role !== 'primary' || !h.record) {
      throw status(grpc.status.FAILED_PRECONDITION, `this server holds a replica of ${h.name}; membership is decided on the primary${h.primaryAddress ? ` at ${h.primaryAddress}` : ''}`)
    }
  }

  handlers(): grpc.UntypedServiceImplementation {
    return {
      Nonce: this.unary(async () => ({nonce: this.nonces.nonce()})),

      Join: this.unary(async call => {
        const r = call.request
        const h = this.host(r.volume)
        this.primaryOnly(h)
        const statement = {volumeId: h.volumeId, server: String(r.server), address: String(r.address), fingerprint: String(r.fingerprint), at: Number(r.at)}
        const proof = Buffer.from(r.signature ?? []).toString('hex')
        if (!PID.test(statement.server) || !/^[0-9a-f]{64}$/.test(statement.fingerprint) || !verifyJoin(statement, proof)) {
          throw status(grpc.status.UNAUTHENTICATED, 'the join statement is malformed or its signature does not verify')
        }

        if (statement.server === h.serverKey) throw status(grpc.status.INVALID_ARGUMENT, 'that key is the primary\'s own')
        return this.serial(h, async () => {
          const e = h.servers.get(statement.server)
          const fresh = !e || e.state === 'kicked' || e.state === 'left' || e.address !== statement.address || e.fingerprint !== statement.fingerprint
          if (fresh) {
            await h.record!({op: 'server-join', path: '/', member: statement.server, address: statement.address, fingerprint: statement.fingerprint, proof, signedAt: statement.at},
              statement.server)
            this.onEvent?.(`server ${statement.server.slice(0, 16)}… at ${statement.address} asks to join ${h.name}`)
          }

          if (h.servers.get(statement.server)?.state === 'pending' && h.accept === 'any') {
            await h.record!({op: 'server-accept', path: '/', member: statement.server}, h.serverKey)
            this.onEvent?.(`accepted server ${statement.server.slice(0, 16)}… (accept policy: any)`)
          }

          const pending = h.servers.get(statement.server)?.state === 'pending'
          return this.standing(h, statement.server, pending ? `waiting for a vote: a member runs \`paciofs member accept ${statement.server}\`` : '')
        })
      }),

      Attach: this.unary(async call => {
        const r = call.request
        const h = this.host(r.volume)
        const nonce = Buffer.from(r.nonce ?? [])
        if (nonce.length !== 32 || !this.nonces.takeNonce(nonce)) throw status(grpc.status.UNAUTHENTICATED, 'unknown, used or expired nonce')
        const key = String(r.key)
        if (!PID.test(key) || !verify(key, transcript(nonce, this.fingerprint, ReplicaService.transcriptVolume(h.name), key), Buffer.from(r.signature ?? []))) {
          throw status(grpc.status.UNAUTHENTICATED, 'the attach signature does not verify for that key')
        }

        if (!h.servers.isAccepted(key) && !h.isMember(key)) {
          const st = h.servers.get(key)?.state
          throw status(grpc.status.PERMISSION_DENIED, `${key.slice(0, 16)}… is ${st ? `${st}, not accepted,` : 'neither a server nor a member'} on volume ${h.name}`)
        }

        const token = randomBytes(24).toString('hex')
        this.attached.set(token, {key, peer: call.getPeer(), host: h})
        return {token, volume_id: h.volumeId}
      }),

      Follow: (call: grpc.ServerWritableStream<R, unknown>) => {
        let a: Attached
        try {
          a = this.auth(call, 'server')
        } catch (error) {
          call.emit('error', error)
          return
        }

        this.streams.add(call)
        let open = true
        const close = () => {
          open = false
          this.streams.delete(call)
        }

        call.on('cancelled', close)
        call.on('close', close)
        call.on('error', close)
        void this.follow(a.host, call, Number(call.request.from ?? 0), () => open && a.host.servers.isAccepted(a.key)).catch(error => {
          if (open) call.emit('error', status(grpc.status.INTERNAL, (error as Error).message))
        }).finally(() => {
          if (open) call.end()
          close()
        })
      },

      Preimages: this.unary(async call => {
        const a = this.auth(call, 'server')
        const hashes = (call.request.hashes ?? []) as Buffer[]
        if (hashes.length > PREIMAGE_BATCH) throw status(grpc.status.INVALID_ARGUMENT, `at most ${PREIMAGE_BATCH} hashes a call`)
        return {preimages: hashes.map(hash => {
          const p = a.host.preimage(Buffer.from(hash))
          return p ? {hash, salt: p.salt, record: p.record, found: true} : {hash, found: false}
        })}
      }),

      Content: (call: grpc.ServerWritableStream<R, unknown>) => {
        void (async () => {
          const a = this.auth(call, 'server')
          const digest = String(call.request.digest)
          if (!/^[0-9a-f]{64}$/.test(digest)) throw status(grpc.status.INVALID_ARGUMENT, 'digest must be 64 hex digits')
          if (!a.host.history?.has(digest)) throw status(grpc.status.NOT_FOUND, `version ${digest.slice(0, 16)}… is not in this server's history`)
          // checked against the digest as it is read (step by step on the pool with the version's marks, else in
          // one pass; the last chunk is sent only if the whole matches); a chunk's buffer is reused once its
          // message was handed to the connection (write's callback)
          const history = a.host.history
          const gone = new Promise<never>((_, reject) => {
            const stop = () => reject(status(grpc.status.CANCELLED, 'the stream was cancelled or closed'))
            call.on('cancelled', stop)
            call.on('close', stop)
          })
          gone.catch(() => {})
          const m = history.manifest(digest)
          if (call.request.marks === true) {
            const marks = await history.marks(m)
            if (marks) await Promise.race([gone, new Promise<void>((resolve, reject) => call.write({marks}, (error?: Error | null) => (error ? reject(error) : resolve())))])
          }

          // each chunk is read with room before it for its message header (framedContent: no copy into a message)
          await pipeVersion(history, m, {whole: true, chunks: false, slots: CONTENT_SLOTS, headroom: CONTENT_HEADER, sink: data => Promise.race([gone,
            new Promise<void>((resolve, reject) => call.write(framedContent(data), (error?: Error | null) => (error ? reject(error) : resolve())))])})
          call.end()
        })().catch(error => {
          const e = typeof (error as Status).code === 'number' ? error : status(grpc.status.INTERNAL, (error as Error).message)
          call.emit('error', e)
        })
      },

      Xattr: this.unary(async call => {
        const a = this.auth(call, 'server')
        const r = call.request
        try {
          const value = sys.lgetxattr(new PathResolver(a.host.root).resolve(String(r.path)), String(r.name))
          if (createHash('sha256').update(value).digest('hex') === r.digest) return {found: true, value}
        } catch { /* gone */ }
        return {found: false}
      }),

      Vote: this.unary(async call => {
        const a = this.auth(call, 'any')
        const h = a.host
        this.primaryOnly(h)
        const vote = String(call.request.vote)
        const server = String(call.request.server)
        if (!PID.test(server)) throw status(grpc.status.INVALID_ARGUMENT, 'server must be a key of 64 hex digits')
        return this.serial(h, async () => {
          const e = h.servers.get(server)
          if (vote === 'accept') {
            if (!e) throw status(grpc.status.NOT_FOUND, `no server ${server.slice(0, 16)}… asked to join ${h.name}`)
            if (e.state === 'pending') await h.record!({op: 'server-accept', path: '/', member: server}, a.key)
          } else if (vote === 'kick') {
            if (server === h.serverKey) throw status(grpc.status.FAILED_PRECONDITION, 'the primary produces the ledger and cannot be voted out')
            if (e && (e.state === 'pending' || e.state === 'accepted')) {
              await h.record!({op: 'server-kick', path: '/', member: server, reason: String(call.request.reason ?? '').slice(0, 1000)}, a.key)
              this.onEvent?.(`server ${server.slice(0, 16)}… voted out by ${a.key.slice(0, 16)}…: ${String(call.request.reason).slice(0, 200)}`)
            }
          } else if (vote === 'leave') {
            if (server !== a.key) throw status(grpc.status.PERMISSION_DENIED, 'a server leaves only by itself')
            if (e && e.state !== 'left') await h.record!({op: 'server-leave', path: '/', member: server}, a.key)
          } else {
            throw status(grpc.status.INVALID_ARGUMENT, 'vote must be accept, kick or leave')
          }

          return this.standing(h, server)
        })
      }),

      Applied: this.unary(async call => {
        const a = this.auth(call, 'server')
        a.host.applied.set(a.key, {epoch: Number(call.request.epoch), seen: Date.now()})
        a.host.appliedChanged?.()
        return {}
      }),

      Status: this.unary(async call => {
        const h = this.host(call.request.volume)
        const head = h.headEpoch()
        const primaryHead = h.primaryHead?.() ?? head
        const servers = [{key: h.servers.primary, address: h.role === 'primary' ? '' : h.primaryAddress ?? '',
          state: 'primary', applied: h.role === 'primary' ? head : primaryHead, seen_ms: h.role === 'primary' ? Date.now() : 0}]
        for (const e of h.servers.list()) {
          const rep = h.applied.get(e.key)
          const self = e.key === h.serverKey
          servers.push({key: e.key, address: e.address, state: e.state, applied: self ? head : rep?.epoch ?? -1, seen_ms: self ? Date.now() : rep?.seen ?? 0})
        }

        return {volume: h.name, volume_id: h.volumeId, role: h.role, head, primary_head: primaryHead, members: h.members(), servers, accept: h.accept}
      }),
    }
  }

  /** Streams blocks from `from`, then each new one, while `alive()`. */
  private async follow(h: ReplicaHost, call: grpc.ServerWritableStream<R, unknown>, from: number, alive: () => boolean): Promise<void> {
    let next = from
    while (alive()) {
      if (next <= h.headEpoch()) {
        for await (const b of h.read(next)) {
          if (!alive()) return
          const cp = await h.checkpoint(b.epoch)
          if (!call.write(blockToMsg(b, cp.signature))) await once(call, 'drain')
          next = b.epoch + 1
        }

        continue
      }

      await new Promise<void>(resolve => {
        const t = setTimeout(done, 1_000)
        function done() {
          clearTimeout(t)
          h.blocks.off('block', done)
          resolve()
        }

        h.blocks.on('block', done)
      })
    }
  }
}
