/**
 * The paciofs.v1.Volume service: one handler per RPC. Each call is checked
 * (session token, same connection, still a member), its path guarded, and
 * the Volume operation runs as the session's member, so its records name who
 * caused them. File-system errors travel in the reply; access errors as gRPC
 * status codes.
 */
import {constants as C} from 'node:fs'
import {posix} from 'node:path'
import {constants as osConstants} from 'node:os'
import * as grpc from '@grpc/grpc-js'
import {verify} from '../crypto/sign.js'
import {PacioError} from '../errors.js'
import {transcript} from '../remote/auth.js'
import {encodeDataInPlace, errnoError, HEADROOM, MAX_CHUNK, MAX_STREAM, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, SESSION_METADATA, statfsToWire, statToWire, type WireCaller} from '../remote/wire.js'
import {actingAs} from '../volume/acting.js'
import type {Caller, TimeSpec} from '../volume/types.js'
import type {ServedVolume} from './served.js'
import {namespaceClock} from './namespace-clock.js'
import {othersCount} from './others-count.js'
import {Sessions, type Session} from './sessions.js'
import {rpcStats} from '../remote/rpc-stats.js'

export interface ServiceOptions {
  volumes: Map<string, ServedVolume>
  /** sha256 of the server certificate's DER, as clients sign it */
  fingerprint: Buffer
  maxHandles: number
  /** events worth a line in the server's output (sessions, refusals, internal errors) */
  onEvent?(message: string): void
}

type Status = {code: grpc.status; details: string}
const status = (code: grpc.status, details: string): Status => Object.assign(new Error(details), {code, details})
const isStatus = (e: unknown): e is Status => typeof (e as Status)?.code === 'number' && typeof (e as Status)?.details === 'string'

/** Handles one Release call may release at most (told to each session: release_batch). */
const RELEASE_BATCH = 64
/** Messages of one server stream waiting to be sent at most (of MAX_CHUNK each). */
const STREAM_AHEAD = 4
/** Writes of one WriteStream received and not yet written at most: the server stops reading it beyond (flow control). */
const WRITES_QUEUED = 4

/** Calls that change something (others-count.ts): a name, attributes, data or xattrs. An Open counts if it truncates. */
const CHANGES = new Set(['create', 'write', 'truncate', 'ftruncate', 'mknod', 'mkdir', 'symlink', 'link', 'unlink', 'rmdir', 'rename', 'chmod', 'chown', 'utimens',
  'setxattr', 'removexattr'])
const changes = (name: string, req: unknown) => CHANGES.has(name) || (name === 'open' && (Number((req as {flags?: unknown} | null)?.flags) & C.O_TRUNC) !== 0)

const ERRNO = osConstants.errno as Record<string, number>
const OPEN_FLAGS = 3 /* O_ACCMODE */ | C.O_APPEND | C.O_TRUNC | C.O_NONBLOCK | C.O_SYNC | C.O_DSYNC | (C as Record<string, number>).O_LARGEFILE

function wireError(error: unknown): {errno: string; message: string} {
  const e = error as NodeJS.ErrnoException
  if (typeof e?.code === 'string' && ERRNO[e.code] !== undefined) return {errno: e.code, message: String(e.message ?? e.code)}
  if (error instanceof PacioError) return {errno: error.code === 'EPERM' ? 'EPERM' : 'EINVAL', message: error.message}
  return {errno: 'EIO', message: String(e?.message ?? error)}
}

function callerOf(c: WireCaller | null | undefined): Caller {
  if (!c) throw errnoError('EINVAL', 'caller missing')
  return {uid: c.uid >>> 0, gid: c.gid >>> 0, pid: c.pid >>> 0}
}

function num(v: string | number, what: string): number {
  const n = Number(v)
  if (!Number.isSafeInteger(n) || n < 0) throw errnoError('EINVAL', `${what} out of range`)
  return n
}

function time(t: string): TimeSpec {
  if (t === 'now' || t === 'omit') return t
  if (!/^-?\d{1,20}$/.test(t)) throw errnoError('EINVAL', 'time must be nanoseconds, "now" or "omit"')
  return BigInt(t)
}

export class VolumeService {
  readonly sessions = new Sessions()
  private inflight = 0
  private idle?: () => void
  draining = false
  /** the data channel's port (protocol 3), told to each session; 0: none */
  dataPort = 0
  readonly stats = rpcStats('server')

  constructor(private readonly opts: ServiceOptions) {
    for (const served of opts.volumes.values()) {
      served.members.onChange(() => {
        for (const s of this.sessions.all()) {
          if (s.served === served && !served.members.has(s.member)) s.end('removed from the volume')
        }
      })
    }
  }

  private event(msg: string): void {
    this.opts.onEvent?.(msg)
  }

  /** Resolves when no call is running (after draining is set). */
  async quiesce(timeoutMs: number): Promise<void> {
    if (this.inflight === 0) return
    await new Promise<void>(resolve => {
      const t = setTimeout(resolve, timeoutMs)
      this.idle = () => {
        clearTimeout(t)
        resolve()
      }
    })
  }

  /** Ends every session (their open files are released, so their content is recorded). */
  async endAll(reason: string): Promise<void> {
    await Promise.all(this.sessions.all().map(s => {
      s.end(reason)
      return this.closing.get(s)
    }))
  }

  private readonly closing = new Map<Session, Promise<void>>()
  /** each session's open WriteStreams (ended with the session) */
  private readonly writeStreams = new Map<Session, Set<() => void>>()
  private readonly work = new Map<Session, Set<Promise<unknown>>>()

  private session(call: grpc.ServerUnaryCall<unknown, unknown>): Session {
    if (this.draining) throw status(grpc.status.UNAVAILABLE, 'the server is shutting down')
    const token = call.metadata.get(SESSION_METADATA)[0]
    if (typeof token !== 'string') throw status(grpc.status.UNAUTHENTICATED, 'no session: say Hello and open a Session first')
    const s = this.sessions.get(token)
    if (!s || s.ended) throw status(grpc.status.UNAUTHENTICATED, 'unknown or ended session')
    if (call.getPeer() !== s.peer) {
      this.event(`refused a session token from another connection (${call.getPeer()}, session of ${s.peer})`)
      throw status(grpc.status.UNAUTHENTICATED, 'this session belongs to another connection')
    }

    if (!s.served.members.has(s.member)) throw status(grpc.status.PERMISSION_DENIED, `${s.member.slice(0, 16)}… is no longer a member of volume ${s.served.name}`)
    return s
  }

  /** A unary handler: authenticate, run as the member, answer {error} for file-system errors. */
  private op<Req>(name: string, fn: (req: Req, s: Session) => Promise<Record<string, unknown>>): grpc.handleUnaryCall<Req, unknown> {
    return (call, callback) => {
      let s: Session
      try {
        s = this.session(call as grpc.ServerUnaryCall<unknown, unknown>)
      } catch (error) {
        callback(error as grpc.ServiceError)
        return
      }

      this.inflight++
      const done = this.stats.start(name)
      const counted = changes(name, call.request) ? othersCount(s.served) : undefined
      counted?.begin(s)
      const running = new Promise<Record<string, unknown>>(resolve => resolve(actingAs(s.member, () => fn(call.request, s))))
      let set = this.work.get(s)
      if (!set) this.work.set(s, set = new Set())
      set.add(running)
      running.finally(() => counted?.end(s)).catch(() => {})
      running.then(reply => callback(null, reply), error => {
        if (isStatus(error)) {
          callback(error as unknown as grpc.ServiceError)
          return
        }

        const w = wireError(error)
        if (w.errno === 'EIO') this.event(`${name}: ${w.message}`)
        callback(null, {error: w})
      }).finally(() => {
        done()
        set!.delete(running)
        if (--this.inflight === 0) this.idle?.()
      })
    }
  }

  /** The session of a streaming call, or undefined after the refusal was sent on the stream. */
  private streamSession(call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>): Session | undefined {
    try {
      return this.session(call as unknown as grpc.ServerUnaryCall<unknown, unknown>)
    } catch (error) {
      call.emit('error', error)
      return undefined
    }
  }

  /**
   * A server-streaming handler, checked and counted like a unary one: `fn`
   * writes with `send` (which waits while the client is not reading); a
   * file-system error is sent as a last message carrying it.
   */
  private streamed<Req>(name: string, fn: (req: Req, s: Session, send: (msg: Buffer | Record<string, unknown>) => Promise<boolean>) => Promise<void>): grpc.handleServerStreamingCall<Req, unknown> {
    return call => {
      const s = this.streamSession(call)
      if (!s) return

      // at most STREAM_AHEAD messages wait to be sent (a client that stops reading holds that
      // much of the server's memory, no more); each waits for the one STREAM_AHEAD - 1 before it
      let gone = false
      let stop!: () => void
      const stopped = new Promise<void>(resolve => (stop = resolve))
      const end = () => {
        gone = true
        stop()
      }

      call.on('cancelled', end)
      call.on('close', end)
      call.on('error', end)
      const queued: Array<Promise<void>> = []
      const send = async (msg: Buffer | Record<string, unknown>) => {
        if (gone || s.ended) return false
        queued.push(new Promise<void>(resolve => call.write(msg, () => resolve())))
        if (queued.length >= STREAM_AHEAD) await Promise.race([queued.shift()!, stopped])
        return !gone && !s.ended
      }

      this.inflight++
      const done = this.stats.start(name)
      const running = new Promise<void>(resolve => resolve(fn(call.request, s, send)))
      let set = this.work.get(s)
      if (!set) this.work.set(s, set = new Set())
      set.add(running)
      running.catch(async error => {
        if (isStatus(error)) return call.emit('error', error)
        const w = wireError(error)
        if (w.errno === 'EIO') this.event(`${name}: ${w.message}`)
        await send({error: w})
      }).then(() => call.end(), () => call.end()).finally(() => {
        done()
        set!.delete(running)
        if (--this.inflight === 0) this.idle?.()
      })
    }
  }

  /**
   * WriteStream: each message is written in order and answered by its count;
   * a failure is answered and ends the stream. Every write counts as a call of
   * its own (a release or the session's end waits for the writes already
   * running, not for the stream). At most WRITES_QUEUED messages wait, and as
   * many more in the paused stream's buffer; beyond that HTTP/2 flow control
   * (the connection's 8 MiB window) stops the client.
   */
  private writeStream(call: grpc.ServerDuplexStream<Record<string, any>, unknown>): void {
    const s = this.streamSession(call)
    if (!s) return

    // grpc-js (1.14) pulls one message from HTTP/2 per _read, and a paused Readable still pulls
    // until it buffers highWaterMark messages (16 in object mode: 16 MiB per stream); keep that
    // at WRITES_QUEUED too. If a later grpc-js hides the state, only the bound grows.
    const readable = (call as unknown as {_readableState?: {highWaterMark?: number}})._readableState
    if (readable && typeof readable.highWaterMark === 'number') readable.highWaterMark = WRITES_QUEUED

    const queue: Array<Record<string, any>> = []
    let busy = false
    let finished = false
    let inputEnded = false
    const finish = () => {
      if (finished) return
      finished = true
      queue.length = 0
      try {
        call.end()
      } catch { /* gone */ }
    }

    let streams = this.writeStreams.get(s)
    if (!streams) this.writeStreams.set(s, streams = new Set())
    streams.add(finish)
    call.on('close', () => streams.delete(finish))

    const pump = async () => {
      if (busy) return
      busy = true
      while (queue.length > 0 && !finished) {
        const r = queue.shift()!
        if (queue.length < WRITES_QUEUED && call.isPaused()) call.resume()
        const reply = await this.oneWrite(s, r)
        if (finished) break
        call.write(reply)
        if (reply.error) finish()
      }

      busy = false
      if (inputEnded) finish()
    }

    call.on('data', (r: Record<string, any>) => {
      if (finished) return
      queue.push(r)
      if (queue.length >= WRITES_QUEUED) call.pause()
      void pump()
    })
    call.on('end', () => {
      inputEnded = true
      if (!busy) finish()
    })
    call.on('cancelled', () => {
      finished = true
      queue.length = 0
    })
    call.on('error', () => {
      finished = true
      queue.length = 0
    })
  }

  /** One write of a WriteStream, run and counted like a unary Write call; its reply. */
  private async oneWrite(s: Session, r: Record<string, any>): Promise<Record<string, unknown>> {
    if (s.ended || this.draining) return {error: {errno: 'ENOTCONN', message: s.ended ? 'session ended' : 'the server is shutting down'}}
    if (!s.served.members.has(s.member)) return {error: {errno: 'EACCES', message: `${s.member.slice(0, 16)}… is no longer a member of volume ${s.served.name}`}}
    this.inflight++
    const done = this.stats.start('write-stream')
    const counted = othersCount(s.served)
    counted.begin(s)
    const running = actingAs(s.member, async () => {
      const h = this.fh(s, r.fh)
      const data = r.data as Buffer
      if (data.length > MAX_CHUNK) throw errnoError('EFBIG', `a write carries at most ${MAX_CHUNK} bytes`)
      return {count: await s.served.volume.write(h.path, h.fh, data, data.length, num(r.offset, 'offset'), callerOf(r.caller))}
    })
    let set = this.work.get(s)
    if (!set) this.work.set(s, set = new Set())
    set.add(running)
    try {
      return await running
    } catch (error) {
      const w = wireError(error)
      if (w.errno === 'EIO') this.event(`write-stream: ${w.message}`)
      return {error: w}
    } finally {
      counted.end(s)
      done()
      set.delete(running)
      if (--this.inflight === 0) this.idle?.()
    }
  }

  /** sha256 of the server certificate's DER (what clients sign over). */
  get fingerprint(): Buffer {
    return this.opts.fingerprint
  }

  private readonly endHooks = new Map<Session, Set<() => void>>()

  /** Runs fn when the session ends (the data channels attached to it close); returns the undo. */
  onSessionEnd(s: Session, fn: () => void): () => void {
    let set = this.endHooks.get(s)
    if (!set) this.endHooks.set(s, set = new Set())
    set.add(fn)
    return () => set.delete(fn)
  }

  /**
   * A read or write of the data channel (data-server.ts) on one of the
   * session's handles: checked, run as the member and counted like a call
   * (a release or the session's end waits for it).
   */
  async dataOp<T>(s: Session, name: string, fh: number, fn: (volume: ServedVolume['volume'], h: {fh: number; path: string}) => Promise<T>): Promise<T> {
    if (s.ended || this.draining) throw errnoError('ENOTCONN', s.ended ? 'session ended' : 'the server is shutting down')
    if (!s.served.members.has(s.member)) throw errnoError('EACCES', `${s.member.slice(0, 16)}… is no longer a member of volume ${s.served.name}`)
    const h = this.fh(s, fh)
    this.inflight++
    const done = this.stats.start(name)
    const counted = name === 'data-write' ? othersCount(s.served) : undefined
    counted?.begin(s)
    const running = actingAs(s.member, () => fn(s.served.volume, h))
    let set = this.work.get(s)
    if (!set) this.work.set(s, set = new Set())
    set.add(running)
    try {
      return await running
    } finally {
      counted?.end(s)
      done()
      set.delete(running)
      if (--this.inflight === 0) this.idle?.()
    }
  }

  private fh(s: Session, fh: string | number): {fh: number; path: string} {
    const n = Number(fh)
    const path = s.handles.get(n)
    if (path === undefined) throw errnoError('EBADF', `no open file handle ${fh} in this session`)
    return {fh: n, path}
  }

  /** Opens a file for the session, within its limit of open files. */
  private async opened(s: Session, p: string, open: () => Promise<number>): Promise<{fh: string}> {
    if (s.handles.size + s.opening >= this.opts.maxHandles) throw errnoError('EMFILE', `this session has ${s.handles.size} files open (the server's limit per session)`)
    s.opening++
    try {
      const fh = await open()
      if (s.ended) {
        await s.served.volume.release(p, fh) // the session ended meanwhile: nobody will release it
        throw errnoError('ENOTCONN', 'session ended')
      }

      s.handles.set(fh, p)
      return {fh: String(fh)}
    } finally {
      s.opening--
    }
  }

  private async endSession(s: Session, call: grpc.ServerWritableStream<unknown, unknown>, reason: string): Promise<void> {
    s.ended = true
    for (const fn of this.endHooks.get(s) ?? []) fn()
    this.endHooks.delete(s)
    this.event(`session of ${s.member.slice(0, 16)}… on ${s.served.name} ended (${reason})`)
    // calls still running finish first: a handle is never closed under a write
    while ((this.work.get(s)?.size ?? 0) > 0) await Promise.allSettled([...this.work.get(s)!])
    for (const [fh, path] of [...s.handles]) {
      s.handles.delete(fh)
      await actingAs(s.member, () => s.served.volume.release(path, fh)).catch(error => this.event(`release ${path}: ${(error as Error).message}`))
    }

    for (const finish of this.writeStreams.get(s) ?? []) finish()
    this.writeStreams.delete(s)
    this.sessions.remove(s)
    othersCount(s.served).forget(s)
    this.work.delete(s)
    try {
      call.end()
    } catch { /* the connection is gone */ }
  }

  handlers(): grpc.UntypedServiceImplementation {
    const v = (s: Session) => s.served.volume
    const g = (s: Session) => s.served.guard
    const path = (s: Session, p: string, final?: 'nofollow') => g(s).check(p, {final})
    const shared = <T>(s: Session, work: () => Promise<T>) => g(s).run(false, work)
    const exclusive = <T>(s: Session, work: () => Promise<T>) => g(s).run(true, work)
    const empty = async (p: Promise<unknown>) => {
      await p
      return {}
    }

    /** Attributes for a reply, or none if they cannot be had (the client then asks). */
    const statOf = async (get: () => Promise<import('node:fs').BigIntStats>) => {
      try {
        return statToWire(await get())
      } catch {
        return undefined
      }
    }

    /** A change to a name (namespace-clock.ts): the version it made, if it ran alone. */
    const named = <T>(s: Session, work: () => Promise<T>) => namespaceClock(s.served).change(work)
    /**
     * A change to the entry at p: the reply carries its directory's attributes after it (and, if made, the
     * entry's), and the namespace version it made.
     */
    const changed = async (s: Session, p: string, made: boolean, change: () => Promise<unknown>) => {
      const others = othersCount(s.served).others(s) // before anything the reply tells was looked at
      const {version} = await named(s, change)
      return {parent: await statOf(() => v(s).getattr(posix.dirname(p))), stat: made ? await statOf(() => v(s).getattr(p)) : undefined,
        names_version: String(version ?? 0n), others_version: String(others ?? 0n)}
    }

    type R = Record<string, any>
    return {
      Hello: (call: grpc.ServerUnaryCall<R, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        if (this.draining) return callback(status(grpc.status.UNAVAILABLE, 'the server is shutting down') as grpc.ServiceError)
        const asked = Number(call.request.protocol)
        if (!(asked >= MIN_PROTOCOL_VERSION)) {
          return callback(status(grpc.status.FAILED_PRECONDITION, `protocol version ${asked} is not supported: this server speaks paciofs.v1 protocols ${MIN_PROTOCOL_VERSION} to ${PROTOCOL_VERSION}`) as grpc.ServiceError)
        }

        // the newest version both speak: a protocol-1 client keeps its unary writes
        callback(null, {protocol: Math.min(asked, PROTOCOL_VERSION), nonce: this.sessions.nonce(), volumes: []})
      },

      Session: (call: grpc.ServerWritableStream<R, unknown>) => {
        const fail = (code: grpc.status, details: string) => {
          this.event(`refused a session from ${call.getPeer()}: ${details}`)
          call.emit('error', status(code, details))
        }

        const r = call.request
        if (this.draining) return fail(grpc.status.UNAVAILABLE, 'the server is shutting down')
        const nonce = Buffer.from(r.nonce ?? [])
        if (nonce.length !== 32 || !this.sessions.takeNonce(nonce)) return fail(grpc.status.UNAUTHENTICATED, 'unknown, used or expired nonce: say Hello again')
        const served = this.opts.volumes.get(String(r.volume))
        if (!served) return fail(grpc.status.NOT_FOUND, `no volume named ${JSON.stringify(String(r.volume)).slice(0, 100)} on this server`)
        const member = String(r.member)
        if (!verify(member, transcript(nonce, this.opts.fingerprint, served.name, member), Buffer.from(r.signature ?? []))) {
          return fail(grpc.status.UNAUTHENTICATED, 'the handshake signature does not verify for that key')
        }

        if (!served.members.has(member)) return fail(grpc.status.PERMISSION_DENIED, `key ${member.slice(0, 16)}… is not a member of volume ${served.name}`)
        let closing: Promise<void> | undefined
        const s = this.sessions.add({
          peer: call.getPeer(), member, served,
          end: reason => {
            closing ??= this.endSession(s, call, reason)
            this.closing.set(s, closing)
          },
        })
        this.event(`session of ${member.slice(0, 16)}… on ${served.name} from ${s.peer}`)
        call.on('cancelled', () => s.end('client went away'))
        call.on('close', () => s.end('connection closed'))
        call.write({token: s.token, volume_id: served.id, max_handles: this.opts.maxHandles, max_chunk: MAX_CHUNK, data_port: this.dataPort, release_batch: RELEASE_BATCH})
      },

      Getattr: this.op<R>('getattr', (r, s) => shared(s, async () => ({stat: statToWire(await v(s).getattr(path(s, r.path)))}))),
      Fgetattr: this.op<R>('fgetattr', async (r, s) => {
        const h = this.fh(s, r.fh)
        return {stat: statToWire(await v(s).fgetattr(h.path, h.fh))}
      }),
      Access: this.op<R>('access', (r, s) => shared(s, () => empty(v(s).access(path(s, r.path, 'nofollow'), r.mode)))),
      Statfs: this.op<R>('statfs', (r, s) => shared(s, async () => statfsToWire(await v(s).statfs(path(s, r.path, 'nofollow'))) as R)),
      Readdir: this.op<R>('readdir', (r, s) => shared(s, async () => ({names: await v(s).readdir(path(s, r.path, 'nofollow'))}))),
      Readlink: this.op<R>('readlink', (r, s) => shared(s, async () => ({text: await v(s).readlink(path(s, r.path))}))),

      Open: this.op<R>('open', (r, s) => shared(s, async () => {
        const p = path(s, r.path)
        return this.opened(s, p, () => v(s).open(p, r.flags & OPEN_FLAGS, callerOf(r.caller)))
      })),
      // the reply carries the new file's and its directory's attributes: the client need not ask for them
      Create: this.op<R>('create', (r, s) => shared(s, async () => {
        const p = path(s, r.path)
        const others = othersCount(s.served).others(s) // before anything the reply tells was looked at
        const {value: reply, version} = await named(s, () => this.opened(s, p, () => v(s).create(p, r.mode & 0o7777 | C.S_IFREG, r.flags & OPEN_FLAGS, callerOf(r.caller)))) as {value: R; version?: bigint}
        reply.names_version = String(version ?? 0n)
        reply.others_version = String(others ?? 0n)
        reply.stat = await statOf(() => v(s).fgetattr(p, Number(reply.fh)))
        reply.parent = await statOf(() => v(s).getattr(posix.dirname(p)))
        return reply
      })),
      Read: this.op<R>('read', async (r, s) => {
        const h = this.fh(s, r.fh)
        const len = Math.min(num(r.length, 'length'), MAX_CHUNK)
        const buf = Buffer.allocUnsafe(HEADROOM + len)
        const n = await v(s).read(h.path, h.fh, buf.subarray(HEADROOM), len, num(r.offset, 'offset'))
        return encodeDataInPlace(buf, n) as unknown as R // a DataReply, encoded around the bytes read
      }),
      ReadStream: this.streamed<R>('read-stream', async (r, s, send) => {
        const h = this.fh(s, r.fh)
        let offset = num(r.offset, 'offset')
        let left = Math.min(num(r.length, 'length'), MAX_STREAM)
        while (left > 0) {
          const len = Math.min(left, MAX_CHUNK)
          const buf = Buffer.allocUnsafe(HEADROOM + len)
          const n = await v(s).read(h.path, h.fh, buf.subarray(HEADROOM), len, offset)
          if (!(await send(encodeDataInPlace(buf, n))) || n < len) return
          offset += n
          left -= n
        }
      }),
      Write: this.op<R>('write', async (r, s) => {
        const h = this.fh(s, r.fh)
        const data = r.data as Buffer
        if (data.length > MAX_CHUNK) throw errnoError('EFBIG', `a write carries at most ${MAX_CHUNK} bytes`)
        return {count: await v(s).write(h.path, h.fh, data, data.length, num(r.offset, 'offset'), callerOf(r.caller))}
      }),
      WriteStream: (call: grpc.ServerDuplexStream<R, unknown>) => this.writeStream(call),
      Flush: this.op<R>('flush', async (r, s) => {
        const h = this.fh(s, r.fh)
        return empty(v(s).flush(h.path, h.fh))
      }),
      Fsync: this.op<R>('fsync', async (r, s) => {
        const h = this.fh(s, r.fh)
        return empty(v(s).fsync(h.path, h.fh, Boolean(r.datasync)))
      }),
      // one handle, or (`more`) several, released in order; the reply carries the first failure
      Release: this.op<R>('release', async (r, s) => {
        const more: unknown[] = Array.isArray(r.more) ? r.more : []
        if (more.length >= RELEASE_BATCH) throw errnoError('EINVAL', `a Release call releases at most ${RELEASE_BATCH} handles`)
        let failed: unknown
        const hs: Array<{fh: number; path: string}> = []
        for (const fh of new Set([r.fh, ...more].map(Number))) {
          try {
            hs.push(this.fh(s, fh))
          } catch (error) {
            failed ??= error // the others are released all the same
          }
        }

        for (const h of hs) s.handles.delete(h.fh) // no new call on them from now on
        // calls that were already running finish first (this call is not yet among them), so a
        // write never lands on a descriptor that was closed and reused
        await Promise.allSettled([...(this.work.get(s) ?? [])])
        for (const h of hs) await v(s).release(h.path, h.fh).catch(error => (failed ??= error))
        if (failed !== undefined) throw failed
        return {}
      }),

      Truncate: this.op<R>('truncate', (r, s) => shared(s, () => empty(v(s).truncate(path(s, r.path), num(r.size, 'size'), callerOf(r.caller))))),
      Ftruncate: this.op<R>('ftruncate', async (r, s) => {
        const h = this.fh(s, r.fh)
        return empty(v(s).ftruncate(h.path, h.fh, num(r.size, 'size'), callerOf(r.caller)))
      }),
      Mknod: this.op<R>('mknod', (r, s) => shared(s, () => {
        const type = r.mode & C.S_IFMT
        if (type === C.S_IFCHR || type === C.S_IFBLK) throw errnoError('EPERM', 'device nodes cannot be made through the network')
        const p = path(s, r.path)
        return changed(s, p, true, () => v(s).mknod(p, r.mode, 0, callerOf(r.caller)))
      })),
      Mkdir: this.op<R>('mkdir', (r, s) => shared(s, () => {
        const p = path(s, r.path)
        return changed(s, p, true, () => v(s).mkdir(p, r.mode, callerOf(r.caller)))
      })),
      Symlink: this.op<R>('symlink', (r, s) => exclusive(s, () => {
        const target = String(r.from)
        if (target.length === 0 || target.includes('\0') || Buffer.byteLength(target) > 4095) throw errnoError('EINVAL', 'bad symlink target')
        const p = path(s, r.to)
        return changed(s, p, true, () => v(s).symlink(target, p, callerOf(r.caller)))
      })),
      Link: this.op<R>('link', (r, s) => exclusive(s, () => empty(named(s, () => v(s).link(path(s, r.from), path(s, r.to), callerOf(r.caller)))))),
      Unlink: this.op<R>('unlink', (r, s) => shared(s, () => {
        const p = path(s, r.path)
        return changed(s, p, false, () => v(s).unlink(p, callerOf(r.caller)))
      })),
      Rmdir: this.op<R>('rmdir', (r, s) => shared(s, () => {
        const p = path(s, r.path)
        return changed(s, p, false, () => v(s).rmdir(p, callerOf(r.caller)))
      })),
      Rename: this.op<R>('rename', (r, s) => exclusive(s, async () => {
        const from = path(s, r.from)
        const to = path(s, r.to)
        await named(s, () => v(s).rename(from, to, callerOf(r.caller)))
        this.sessions.renamed(s.served, from, to)
        return {}
      })),
      Chmod: this.op<R>('chmod', (r, s) => shared(s, () => empty(v(s).chmod(path(s, r.path, 'nofollow'), r.mode, callerOf(r.caller))))),
      Chown: this.op<R>('chown', (r, s) => shared(s, () => empty(v(s).chown(path(s, r.path), Number(r.uid), Number(r.gid), callerOf(r.caller))))),
      Utimens: this.op<R>('utimens', (r, s) => shared(s, () => empty(v(s).utimens(path(s, r.path), time(r.atime), time(r.mtime), callerOf(r.caller))))),

      Setxattr: this.op<R>('setxattr', (r, s) => shared(s, () => empty(v(s).setxattr(path(s, r.path), String(r.name), r.value as Buffer, r.flags, callerOf(r.caller))))),
      Getxattr: this.op<R>('getxattr', (r, s) => shared(s, async () => ({data: await v(s).getxattr(path(s, r.path), String(r.name))}))),
      Listxattr: this.op<R>('listxattr', (r, s) => shared(s, async () => ({names: await v(s).listxattr(path(s, r.path))}))),
      Removexattr: this.op<R>('removexattr', (r, s) => shared(s, () => empty(v(s).removexattr(path(s, r.path), String(r.name), callerOf(r.caller))))),

      Sync: this.op<R>('sync', (_r, s) => empty(v(s).sync())),

      MemberList: this.op<R>('member-list', async (_r, s) => ({members: s.served.members.list()})),
      MemberAdd: this.op<R>('member-add', (r, s) => this.membership(() => s.served.members.add(String(r.member), s.member, callerOf(r.caller)))),
      MemberRemove: this.op<R>('member-remove', (r, s) => this.membership(() => s.served.members.remove(String(r.member), s.member, callerOf(r.caller)))),
    }
  }

  private async membership(work: () => Promise<string[]>): Promise<R> {
    try {
      return {members: await work()}
    } catch (error) {
      if (error instanceof PacioError) throw status(grpc.status.FAILED_PRECONDITION, error.message)
      throw error
    }
  }
}

type R = Record<string, unknown>
