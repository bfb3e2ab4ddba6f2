/**
 * The client's side of a session: one TLS channel to the server (its
 * certificate pinned), the handshake (Hello, then a Session stream opened
 * with a signature by the member key), and calls with a deadline each. A
 * call refused as unauthenticated (the server restarted, or the connection
 * was re-established) re-runs the handshake and is sent once more: the server
 * refused it before doing anything. A server that is gone answers ENOTCONN,
 * one that does not answer in time EIO, never a hang.
 */
import * as grpc from '@grpc/grpc-js'
import {sign, type Identity} from '../crypto/sign.js'
import {PacioError} from '../errors.js'
import {transcript} from './auth.js'
import {pinnedClient} from './channel.js'
import {CallStatus, DataChannel} from './data-channel.js'
import {fetchServerCert, pinServer} from './known-servers.js'
import {rpcStats} from './rpc-stats.js'
import {errnoError, MAX_MESSAGE, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, SERVICE, SESSION_METADATA, serviceDefinition} from './wire.js'

export interface ConnectionOptions {
  /** host:port, or several separated by commas (failover in that order) */
  server: string
  volume: string
  identity: Identity
  knownServersFile: string
  trustNewServerKey?: boolean
  /** deadline of ordinary calls (ms) */
  deadlineMs?: number
  /** deadline of calls that wait for the ledger (fsync, release, sync, membership) */
  slowDeadlineMs?: number
  onEvent?(message: string): void
}

export function parseServer(server: string): {host: string; port: number} {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(server)
  const port = m ? Number(m[2]) : 0
  if (!m || port < 1 || port > 65535) throw new PacioError('EINPUT', `--server must be HOST:PORT, got ${JSON.stringify(server)}`)
  return {host: m[1].replace(/^\[|\]$/g, ''), port}
}

type Reply = Record<string, any> & {error?: {errno: string; message: string} | null}

const SLOW = new Set(['Fsync', 'Release', 'Flush', 'Sync', 'MemberAdd', 'MemberRemove'])
/**
 * Reads and writes wait behind other clients' data at a busy server (8 clients with 4 MiB
 * in flight each, say): their deadline is longer. A server that is gone is noticed by the
 * keepalive pings within seconds, whatever the deadline.
 */
const DATA = new Set(['Read', 'Write'])
const DATA_DEADLINE_MS = 60_000

/** Calls that change nothing on the server: sent again to the next server after a failover. */
const RETRY_ELSEWHERE = new Set(['Getattr', 'Access', 'Statfs', 'Readdir', 'Readlink', 'Getxattr', 'Listxattr', 'MemberList'])

/** gRPC failures -> errno-style errors the FUSE adapter maps. */
function errnoOf(e: grpc.ServiceError): NodeJS.ErrnoException {
  switch (e.code) {
    case grpc.status.UNAVAILABLE:
    case grpc.status.CANCELLED: return errnoError('ENOTCONN', `server unavailable: ${e.details}`)
    case grpc.status.PERMISSION_DENIED: return errnoError('EACCES', e.details)
    case grpc.status.UNAUTHENTICATED: return errnoError('EACCES', e.details)
    case grpc.status.FAILED_PRECONDITION: return errnoError('EINVAL', e.details)
    case grpc.status.NOT_FOUND: return errnoError('ENOENT', e.details)
    case grpc.status.DEADLINE_EXCEEDED: return errnoError('EIO', 'the server did not answer in time')
    default: return errnoError('EIO', `${grpc.status[e.code] ?? e.code}: ${e.details}`)
  }
}

export class Connection {
  private client?: grpc.Client
  private fingerprint?: Buffer
  private token?: string
  private stream?: grpc.ClientReadableStream<unknown>
  private handshaking?: Promise<string>
  /** bumped by every new session: server file handles of an older one are gone */
  generation = 0
  volumeId = ''
  maxChunk = 1024 * 1024
  /** the most handles one Release call may release (the session's answer; 1: an older server) */
  releaseBatch = 1
  /** the protocol version agreed with the server (2: writes may go over WriteStream) */
  protocol = MIN_PROTOCOL_VERSION
  private closed = false
  private readonly stats = rpcStats('client')
  /** the data channel (protocol 3): its port in this session (0: none), the pinned certificate, the channel */
  private dataPort = 0
  private pinned?: {host: string; cert: string; fingerprint: string}
  private dataChannel?: DataChannel
  private dataOpening?: Promise<DataChannel | undefined>
  /** the session in which opening the data channel failed (reads and writes then go over gRPC) */
  private dataFailed = -1

  constructor(private readonly opts: ConnectionOptions) {
    this.servers = opts.server.split(',').map(a => a.trim()).filter(a => a.length > 0)
    if (this.servers.length === 0) throw new PacioError('EINPUT', '--server must name at least one HOST:PORT')
    for (const a of this.servers) parseServer(a)
  }

  /** host:port of each server given (`--server a:1,b:2`: the first that answers, then the others on failure). */
  readonly servers: string[]
  private current = 0

  /** The server this connection talks to now. */
  get server(): string {
    return this.servers[this.current]
  }

  /** First contact: fetch and pin the server's certificate, open the channel, open a session (the first server that answers). */
  async connect(): Promise<{pinnedNow: boolean; fingerprint: string}> {
    let lastError: unknown
    for (let i = 0; i < this.servers.length; i++) {
      try {
        this.current = i
        return await this.open(this.servers[i])
      } catch (error) {
        lastError = error
        this.client?.close()
        this.client = undefined
        if (!(error instanceof PacioError && error.code === 'EINPUT' && /cannot reach/.test(error.message)) || i === this.servers.length - 1) throw error
        this.opts.onEvent?.(`${this.servers[i]}: ${(error as Error).message}; trying ${this.servers[i + 1]}`)
      }
    }

    throw lastError
  }

  private async open(server: string): Promise<{pinnedNow: boolean; fingerprint: string}> {
    const {host, port} = parseServer(server)
    let got
    try {
      got = await fetchServerCert(host, port)
    } catch (error) {
      throw new PacioError('EINPUT', `cannot reach a PacioFS server at ${server}: ${(error as Error).message}`, {cause: error,
        suggestion: 'is `paciofs serve` running there, and is the port right?'})
    }

    const pinned = pinServer(this.opts.knownServersFile, `${host}:${port}`, got, {trustNew: this.opts.trustNewServerKey})
    this.fingerprint = Buffer.from(pinned.fingerprint, 'hex')
    this.pinned = {host, cert: pinned.cert, fingerprint: pinned.fingerprint}
    this.client = pinnedClient(serviceDefinition(), SERVICE, host, port, pinned.cert, pinned.fingerprint)
    try {
      await this.session()
    } catch (error) {
      const e = error as grpc.ServiceError
      if (typeof e?.code !== 'number' || typeof e.details !== 'string') throw error
      const suggestion = e.code === grpc.status.PERMISSION_DENIED
        ? `ask a member to run \`paciofs member add ${this.opts.identity.pid} --server ${server} --volume ${this.opts.volume}\``
        : undefined
      throw new PacioError(e.code === grpc.status.PERMISSION_DENIED || e.code === grpc.status.UNAUTHENTICATED ? 'EPERM' : 'EINPUT', e.details, {suggestion, cause: error})
    }

    return {pinnedNow: pinned.pinnedNow, fingerprint: pinned.fingerprint}
  }

  private failingOver?: Promise<boolean>

  /**
   * The server stopped answering: move to the next one that does (a new
   * session, so open handles are reopened by path). False if none answers.
   */
  failover(): Promise<boolean> {
    if (this.servers.length < 2 || this.closed) return Promise.resolve(false)
    this.failingOver ??= (async () => {
      const from = this.current
      for (let step = 1; step < this.servers.length; step++) {
        const i = (from + step) % this.servers.length
        this.dropSession()
        this.client?.close()
        this.client = undefined
        try {
          this.current = i
          await this.open(this.servers[i])
          this.opts.onEvent?.(`${this.servers[from]} does not answer; now using ${this.servers[i]}`)
          return true
        } catch (error) {
          this.opts.onEvent?.(`failover to ${this.servers[i]}: ${(error as Error).message}`)
        }
      }

      this.current = from
      await this.open(this.servers[from]).catch(() => {})
      return false
    })().finally(() => (this.failingOver = undefined))
    return this.failingOver
  }

  private unary(method: string, req: unknown, meta: grpc.Metadata, deadlineMs: number): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const fn = (this.client as unknown as Record<string, Function>)[method]
      fn.call(this.client, req, meta, {deadline: Date.now() + deadlineMs}, (err: grpc.ServiceError | null, reply: Reply) => err ? reject(err) : resolve(reply))
    })
  }

  /** The current session token, opening a session if there is none. */
  private session(): Promise<string> {
    if (this.token) return Promise.resolve(this.token)
    this.handshaking ??= this.handshake().finally(() => (this.handshaking = undefined))
    return this.handshaking
  }

  private async handshake(): Promise<string> {
    if (this.closed) throw errnoError('ENOTCONN', 'connection closed')
    const deadline = this.opts.deadlineMs ?? 5_000
    let hello = await this.unary('Hello', {protocol: PROTOCOL_VERSION, client: 'paciofs'}, new grpc.Metadata(), deadline).catch(async (error: grpc.ServiceError) => {
      // a server older than WriteStream refuses version 2: speak 1 to it (every write a Write call)
      if (error?.code !== grpc.status.FAILED_PRECONDITION) throw error
      return this.unary('Hello', {protocol: MIN_PROTOCOL_VERSION, client: 'paciofs'}, new grpc.Metadata(), deadline)
    })
    const spoken = Number(hello.protocol)
    if (!(spoken >= MIN_PROTOCOL_VERSION && spoken <= PROTOCOL_VERSION)) {
      throw new PacioError('EINPUT', `the server speaks protocol ${hello.protocol}, this client ${MIN_PROTOCOL_VERSION} to ${PROTOCOL_VERSION}`)
    }

    this.protocol = spoken
    const nonce = Buffer.from(hello.nonce)
    const member = this.opts.identity.pid
    const signature = sign(this.opts.identity, transcript(nonce, this.fingerprint!, this.opts.volume, member))
    const stream = this.client!.makeServerStreamRequest(`/${SERVICE}/Session`,
      (v: unknown) => (serviceDefinition().Session.requestSerialize as (v: unknown) => Buffer)(v),
      (b: Buffer) => (serviceDefinition().Session.responseDeserialize as (b: Buffer) => unknown)(b),
      {volume: this.opts.volume, member, nonce, signature}, new grpc.Metadata(), {}) as grpc.ClientReadableStream<Reply>
    const token = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => {
        stream.cancel()
        reject(errnoError('EIO', 'the server did not open the session in time'))
      }, deadline)
      stream.once('data', (ev: Reply) => {
        clearTimeout(t)
        this.volumeId = ev.volume_id
        this.maxChunk = ev.max_chunk || this.maxChunk
        this.dataPort = Number(ev.data_port) || 0
        this.releaseBatch = Number(ev.release_batch) || 1
        resolve(ev.token)
      })
      stream.once('error', (e: grpc.ServiceError) => {
        clearTimeout(t)
        reject(e)
      })
    })
    const forget = () => {
      if (this.stream === stream) {
        this.stream = undefined
        this.token = undefined
        this.opts.onEvent?.('session ended; the next call opens a new one')
      }
    }

    stream.on('error', forget)
    stream.on('end', forget)
    stream.on('data', () => {})
    this.stream = stream
    this.token = token
    this.generation++
    return token
  }

  /**
   * Calls an RPC; a file-system error in the reply is thrown as an errno-style error.
   * `extraMs` lengthens the deadline of a call whose work grows with data (an fsync or
   * release hashes, stores and flushes what was written); a server that is gone is still
   * noticed within seconds by the keepalive pings, whatever the deadline.
   */
  async call(method: string, req: unknown, extraMs = 0): Promise<Reply> {
    const deadline = (DATA.has(method) ? Math.max(DATA_DEADLINE_MS, this.opts.slowDeadlineMs ?? 0) : SLOW.has(method) ? this.opts.slowDeadlineMs ?? 15_000 : this.opts.deadlineMs ?? 5_000) + extraMs
    for (let attempt = 0; ; attempt++) {
      let token: string
      try {
        token = await this.session()
      } catch (error) {
        // nothing was sent: any call may go to the next server
        if ((error as grpc.ServiceError).code === grpc.status.UNAVAILABLE && attempt < this.servers.length && await this.failover()) continue
        throw this.failure(error)
      }

      let reply: Reply
      const done = this.stats.start(method)
      // over the data channel when there is one: one frame each way instead of an HTTP/2 stream per call
      const data = await this.data().catch(() => undefined)
      const def = serviceDefinition()[method]
      const encoded = data && (def.requestSerialize as (v: unknown) => Buffer)(req)
      // a request too large for a frame goes over gRPC (which refuses it as it always did)
      if (data && encoded && encoded.length <= MAX_MESSAGE && data.generation === this.generation && this.token === token) {
        try {
          reply = def.responseDeserialize(await data.call(method, encoded, deadline)) as Reply
          done()
        } catch (error) {
          if (error instanceof CallStatus && error.code === grpc.status.UNAUTHENTICATED && attempt === 0) {
            if (this.token === token) this.dropSession()
            continue
          }

          const e = error as NodeJS.ErrnoException
          if (e.code === 'ENOTCONN' && attempt < this.servers.length && await this.failover() && RETRY_ELSEWHERE.has(method)) continue
          throw this.failure(error)
        }

        if (reply.error?.errno) throw errnoError(reply.error.errno, reply.error.message)
        return reply
      }

      const meta = new grpc.Metadata()
      meta.set(SESSION_METADATA, token)
      try {
        reply = await this.unary(method, req, meta, deadline)
        done()
      } catch (error) {
        const e = error as grpc.ServiceError
        if (e.code === grpc.status.UNAUTHENTICATED && attempt === 0) {
          if (this.token === token) this.dropSession()
          continue
        }

        if (e.code === grpc.status.UNAVAILABLE && attempt < this.servers.length && await this.failover() && RETRY_ELSEWHERE.has(method)) continue
        throw this.failure(error)
      }

      if (reply.error?.errno) throw errnoError(reply.error.errno, reply.error.message)
      return reply
    }
  }

  /**
   * Opens a server stream (no deadline: its reader watches for silence). Resolves once
   * sent; an UNAUTHENTICATED refusal arrives as an 'error' event like any other.
   */
  async openStream(method: string, req: unknown): Promise<grpc.ClientReadableStream<Reply>> {
    let token: string
    try {
      token = await this.session()
    } catch (error) {
      throw this.failure(error)
    }

    const meta = new grpc.Metadata()
    meta.set(SESSION_METADATA, token)
    const def = serviceDefinition()[method]
    return this.client!.makeServerStreamRequest(def.path, def.requestSerialize as (v: unknown) => Buffer,
      def.responseDeserialize as (b: Buffer) => Reply, req, meta, {}) as grpc.ClientReadableStream<Reply>
  }

  /**
   * Opens a bidirectional stream (WriteStream) in the current session, or
   * undefined if the server speaks protocol 1. No deadline: its user watches
   * for silence.
   */
  async openDuplex(method: string): Promise<{stream: grpc.ClientDuplexStream<unknown, Reply>; generation: number} | undefined> {
    let token: string
    try {
      token = await this.session()
    } catch (error) {
      throw this.failure(error)
    }

    if (this.protocol < 2) return undefined
    const meta = new grpc.Metadata()
    meta.set(SESSION_METADATA, token)
    const def = serviceDefinition()[method]
    const stream = this.client!.makeBidiStreamRequest(def.path, def.requestSerialize as (v: unknown) => Buffer,
      def.responseDeserialize as (b: Buffer) => Reply, meta, {}) as grpc.ClientDuplexStream<unknown, Reply>
    return {stream, generation: this.generation}
  }

  /**
   * The data channel of the current session (opened on first use, or anew
   * after a failure or a new session), or undefined if the server offers
   * none, it could not be opened in this session, or PACIOFS_DATA_CHANNEL=0.
   */
  async data(): Promise<DataChannel | undefined> {
    let token: string
    try {
      token = await this.session()
    } catch (error) {
      throw this.failure(error)
    }

    const generation = this.generation
    if (this.dataChannel?.usable && this.dataChannel.generation === generation) return this.dataChannel
    if (this.protocol < 3 || !this.dataPort || !this.pinned || this.dataFailed === generation || process.env.PACIOFS_DATA_CHANNEL === '0') return undefined
    this.dataOpening ??= (async () => {
      this.dataChannel?.close()
      this.dataChannel = undefined
      try {
        this.dataChannel = await DataChannel.open({
          host: this.pinned!.host, port: this.dataPort, cert: this.pinned!.cert, fingerprint: this.pinned!.fingerprint,
          token, volume: this.opts.volume, identity: this.opts.identity, generation, timeoutMs: this.opts.deadlineMs ?? 5_000,
        })
        if (this.closed) this.dataChannel.close()
        return this.dataChannel
      } catch (error) {
        this.dataFailed = generation
        this.opts.onEvent?.(`data channel: ${(error as Error).message}; reads and writes go over gRPC in this session`)
        return undefined
      }
    })().finally(() => (this.dataOpening = undefined))
    return this.dataOpening
  }

  /** A gRPC failure as an errno-style error (anything else unchanged). */
  errno(error: unknown): unknown {
    return this.failure(error)
  }

  private failure(error: unknown): unknown {
    const e = error as grpc.ServiceError
    if (typeof e?.code === 'number' && typeof e.details === 'string') return errnoOf(e)
    return error
  }

  private dropSession(): void {
    this.dataChannel?.close()
    this.dataChannel = undefined
    this.stream?.cancel()
    this.stream = undefined
    this.token = undefined
  }

  close(): void {
    this.stats.write()
    this.closed = true
    this.dropSession()
    this.client?.close()
  }
}
