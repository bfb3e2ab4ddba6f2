/**
 * The servers a replica fetches from: the primary (address and certificate
 * given by the operator at join) and every other accepted server (address
 * and certificate named by its server-join record on the ledger). Whatever
 * a peer serves is checked here before anyone uses it; a peer that serves
 * something that does not match is voted out (VOTEKICK on the primary), is
 * not asked again, and the next peer is tried.
 */
import {createHash} from 'node:crypto'
import * as grpc from '@grpc/grpc-js'
import {sha256} from '../crypto/hash.js'
import {sign, type Identity} from '../crypto/sign.js'
import {PacioError} from '../errors.js'
import {transcript} from '../remote/auth.js'
import type {Incoming} from './incoming.js'
import type {ServerSet} from './servers.js'
import {ReplicaService} from './service.js'
import {openReplicaClient, PREIMAGE_BATCH, REPLICA_METADATA, unary, type ReplicaClient} from './wire.js'

export interface PeerInfo {
  key: string
  address: string
  fingerprint: string
  /** the pinned certificate (PEM), for the primary */
  cert?: string
}

/** A peer served something that does not match the ledger. */
export class PeerLied extends PacioError {
  constructor(readonly peer: string, message: string) {
    super('ETAMPER', message)
    this.name = 'PeerLied'
  }
}

export class Peer {
  private client?: ReplicaClient
  private token?: string

  constructor(readonly info: PeerInfo, private readonly identity: Identity, private readonly volume: string) {}

  get key(): string {
    return this.info.key
  }

  async channel(): Promise<ReplicaClient> {
    this.client ??= await openReplicaClient(this.info.address, this.info.fingerprint, this.info.cert)
    return this.client
  }

  private async attach(): Promise<string> {
    if (this.token) return this.token
    const client = await this.channel()
    const {nonce} = await unary<{nonce: Buffer}>(client, 'Nonce', {}, undefined, 5_000)
    const n = Buffer.from(nonce)
    const signature = sign(this.identity, transcript(n, Buffer.from(this.info.fingerprint, 'hex'), ReplicaService.transcriptVolume(this.volume), this.identity.pid))
    const reply = await unary<{token: string}>(client, 'Attach', {volume: this.volume, key: this.identity.pid, nonce: n, signature}, undefined, 5_000)
    this.token = reply.token
    return this.token
  }

  async meta(): Promise<grpc.Metadata> {
    const m = new grpc.Metadata()
    m.set(REPLICA_METADATA, await this.attach())
    return m
  }

  /** A unary call as an attached server; a token refused (the peer restarted) is renewed once. */
  async call<T = Record<string, any>>(method: string, req: unknown, deadlineMs = 10_000): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await unary<T>(await this.channel(), method, req, await this.meta(), deadlineMs)
      } catch (error) {
        if ((error as grpc.ServiceError).code === grpc.status.UNAUTHENTICATED && attempt === 0) {
          this.token = undefined
          continue
        }

        throw error
      }
    }
  }

  /** A server stream as an attached server. */
  async stream(method: string, req: unknown): Promise<grpc.ClientReadableStream<any>> {
    const client = await this.channel()
    const stream = client[method].call(client, req, await this.meta()) as grpc.ClientReadableStream<any>
    // the connection was re-established since the token was issued: the next call attaches again
    stream.on('error', (e: grpc.ServiceError) => {
      if (e.code === grpc.status.UNAUTHENTICATED) this.token = undefined
    })
    return stream
  }

  dropToken(): void {
    this.token = undefined
  }

  close(): void {
    this.client?.close()
    this.client = undefined
    this.token = undefined
  }
}

export interface PoolOptions {
  identity: Identity
  volume: string
  primary: PeerInfo
  servers: ServerSet
  onEvent?(message: string): void
}

export class PeerPool {
  private readonly peers = new Map<string, Peer>()
  /** peers that lied to this replica: never asked again */
  readonly bad = new Set<string>()
  private turn = 0
  kicked = 0
  /** versions fetched: checked step by step with the sender's marks, or in one pass (no marks, or a step missed them) */
  readonly versions = {withMarks: 0, onePass: 0}

  constructor(private readonly opts: PoolOptions) {
    this.peers.set(opts.primary.key, new Peer(opts.primary, opts.identity, opts.volume))
  }

  get primary(): Peer {
    return this.peers.get(this.opts.primary.key)!
  }

  /** Peers to fetch from, other replicas first (taking turns), the primary last. */
  candidates(): Peer[] {
    const others: Peer[] = []
    for (const e of this.opts.servers.accepted()) {
      if (e.key === this.opts.identity.pid || this.bad.has(e.key) || !e.address) continue
      let p = this.peers.get(e.key)
      if (p && (p.info.address !== e.address || p.info.fingerprint !== e.fingerprint)) {
        p.close()
        p = undefined
      }

      if (!p) {
        p = new Peer({key: e.key, address: e.address, fingerprint: e.fingerprint}, this.opts.identity, this.opts.volume)
        this.peers.set(e.key, p)
      }

      others.push(p)
    }

    const start = others.length > 0 ? this.turn++ % others.length : 0
    return [...others.slice(start), ...others.slice(0, start), ...(this.bad.has(this.primary.key) ? [] : [this.primary])]
  }

  /** Votes a lying peer out (on the primary) and stops asking it. */
  async lied(peer: Peer, reason: string): Promise<void> {
    if (this.bad.has(peer.key)) return
    this.bad.add(peer.key)
    this.kicked++
    peer.close()
    this.opts.onEvent?.(`peer ${peer.key.slice(0, 16)}… at ${peer.info.address} served data that does not match the ledger: ${reason}; voting it out`)
    if (peer.key === this.primary.key) return // the primary cannot be voted out: its blocks are still checked one by one
    await this.primary.call('Vote', {vote: 'kick', server: peer.key, reason}).catch(error => {
      this.opts.onEvent?.(`could not record the vote against ${peer.key.slice(0, 16)}…: ${(error as Error).message}`)
    })
  }

  /** Record preimages for these salted hashes, each checked: sha256(salt ‖ record) = hash. */
  async preimages(hashes: Buffer[]): Promise<Map<string, {salt: Buffer; record: Buffer}>> {
    const out = new Map<string, {salt: Buffer; record: Buffer}>()
    for (let i = 0; i < hashes.length; i += PREIMAGE_BATCH) {
      let want = hashes.slice(i, i + PREIMAGE_BATCH)
      for (const peer of this.candidates()) {
        if (want.length === 0) break
        let reply: {preimages: Array<{hash: Buffer; salt: Buffer; record: Buffer; found: boolean}>}
        try {
          reply = await peer.call('Preimages', {hashes: want})
        } catch (error) {
          this.opts.onEvent?.(`preimages from ${peer.info.address}: ${(error as Error).message}`)
          continue
        }

        const got = new Map<string, {salt: Buffer; record: Buffer}>()
        let lie: string | undefined
        for (const p of reply.preimages ?? []) {
          if (!p.found) continue
          const h = Buffer.from(p.hash)
          const salt = Buffer.from(p.salt)
          const record = Buffer.from(p.record)
          if (!sha256(salt, record).equals(h)) {
            lie = `the preimage it gave for salted hash ${h.toString('hex').slice(0, 16)}… hashes to ${sha256(salt, record).toString('hex').slice(0, 16)}…`
            break
          }

          got.set(h.toString('hex'), {salt, record})
        }

        if (lie) {
          await this.lied(peer, lie)
          continue
        }

        for (const [k, v] of got) out.set(k, v)
        want = want.filter(h => !out.has(h.toString('hex')))
      }

      if (want.length > 0) throw new PacioError('ELEDGER', `no peer could give the records of ${want.length} salted hashes (first ${want[0].toString('hex').slice(0, 16)}…); will try again`)
    }

    return out
  }

  /**
   * Fetches a version into the history store and stages it for installing
   * (incoming.ts): its manifest is written and it is staged only once the
   * bytes have its size and hash to its digest.
   */
  async fetchContent(incoming: Incoming, digest: string, size: number): Promise<void> {
    if (incoming.history.has(digest)) return
    let lastError: unknown
    for (const peer of this.candidates()) {
      try {
        await this.fetchFrom(peer, incoming, digest, size)
        return
      } catch (error) {
        lastError = error
        if (error instanceof PeerLied) await this.lied(peer, error.message)
        else this.opts.onEvent?.(`content ${digest.slice(0, 16)}… from ${peer.info.address}: ${(error as Error).message}`)
      }
    }

    throw new PacioError('ELEDGER', `no peer could give version ${digest.slice(0, 16)}… (${size} bytes): ${(lastError as Error)?.message ?? 'no peers'}`)
  }

  private async fetchFrom(peer: Peer, incoming: Incoming, digest: string, size: number): Promise<void> {
    const stream = await peer.stream('Content', {digest, marks: true})
    const sink = incoming.receive(digest, size)
    try {
      for await (const piece of stream as AsyncIterable<{data: Buffer; marks?: Buffer}>) {
        // the sender's marks, first: each chunk's step is checked against them on the pool (not trusted: see incoming.ts)
        if (piece.marks && piece.marks.length > 0 && sink.received === 0) sink.useMarks(piece.marks)
        const data = Buffer.isBuffer(piece.data) ? piece.data : Buffer.from(piece.data ?? [])
        if (sink.received + data.length > size) throw new PeerLied(peer.key, `it sent more than the ${size} bytes version ${digest.slice(0, 16)}… has`)
        sink.push(data)
        await sink.room()
      }

      const got = await sink.finish()
      if (got !== digest || sink.received !== size) {
        throw new PeerLied(peer.key, `the content it gave for version ${digest.slice(0, 16)}… (${size} bytes) hashes to ${got.slice(0, 16)}… (${sink.received} bytes)`)
      }

      await sink.commit()
      if (sink.checkedWithMarks) this.versions.withMarks++
      else this.versions.onePass++
    } catch (error) {
      stream.cancel()
      await sink.abort()
      throw error
    }
  }

  /** An xattr value, checked against its digest; undefined if no peer has it any more. */
  async xattr(path: string, name: string, digest: string): Promise<Buffer | undefined> {
    for (const peer of this.candidates()) {
      try {
        const r = await peer.call<{found: boolean; value: Buffer}>('Xattr', {path, name, digest})
        if (!r.found) continue
        const value = Buffer.from(r.value)
        if (createHash('sha256').update(value).digest('hex') !== digest) {
          await this.lied(peer, `the value it gave for xattr ${name} of ${path} does not match its digest`)
          continue
        }

        return value
      } catch { /* next */ }
    }

    return undefined
  }

  close(): void {
    for (const p of this.peers.values()) p.close()
  }
}
