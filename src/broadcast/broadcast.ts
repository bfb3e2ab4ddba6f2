/**
 * Reliable FIFO-order tamper-proof broadcast over any Ledger.
 *
 * Sending: broadcast() stores the payload in the sender's state file before it
 * returns. Queued payloads are cut into one signed envelope per flush (after
 * `flushMs`, or at once when `maxBatch` payloads or `maxBatchBytes` are
 * waiting); the envelope is stored in the outbox, then appended to the
 * ledger, and removed from the outbox once committed. One envelope is in
 * flight at a time, so a sender's envelopes reach the ledger in seq order on
 * any ledger; a failed append is retried (with backoff) until it succeeds.
 * After a crash, open() finds which outbox envelopes already reached the
 * ledger, re-sends the others, and adopts the sender's last seq from the
 * ledger if the local state is behind it.
 *
 * Receiving: deliver() (see deliver.ts and validate.ts).
 */
import {setTimeout as sleep} from 'node:timers/promises'
import {sha256Hex} from '../crypto/hash.js'
import type {Identity} from '../crypto/sign.js'
import {CorruptStateError, PacioError} from '../errors.js'
import type {Ledger} from '../ledger/types.js'
import {deliver, type DeliverOptions, type DeliveryStream} from './deliver.js'
import {decodeEnvelope, encodeEnvelope, envelopeId, signEnvelope, verifyEnvelope} from './envelope.js'
import {BroadcastState} from './state.js'
import type {Delivery, DeliverySink, Envelope, Violation} from './types.js'

export interface BroadcastOptions {
  ledger: Ledger
  identity: Identity
  /** the sender's state file, e.g. `<state dir>/broadcast.db` */
  file: string
  /**
   * how long the first queued payload waits for company (ms, default 20).
   * Every envelope is one block on the embedded ledger, i.e. one fsync: a
   * window of a few ms lets a steady stream of small operations fsync
   * hundreds of times a second, which slows down every other write to the
   * disk. flush() (a file's fsync) cuts at once and does not wait.
   */
  flushMs?: number
  /** most payloads per envelope (default 1000) */
  maxBatch?: number
  /** most payload bytes per envelope (default 1 MiB) */
  maxBatchBytes?: number
  /** first retry delay after a failed append (ms, default 50; doubles up to 5 s) */
  retryMs?: number
}

interface Waiter {
  resolve: (d: Delivery) => void
  reject: (e: Error) => void
}

/** The waiter of a journaled payload: reports to the caller's sink, without a promise. */
class SinkWaiter implements Waiter {
  constructor(private readonly sink: DeliverySink, private readonly tag: number) {}
  resolve(d: Delivery): void {
    this.sink.delivered(this.tag, d)
  }

  reject(e: Error): void {
    this.sink.failed(this.tag, e)
  }
}

interface InFlight {
  seq: number
  envelope: Envelope
  bytes: Buffer
  qids: number[]
}

/** Key of a payload in the pending set: small payloads (a record's salted hash) as themselves, others by their hash. */
function pendingKey(payload: Buffer): string {
  return payload.length <= 64 ? `=${payload.toString('hex')}` : sha256Hex(payload)
}

export class Broadcast {
  readonly pid: string
  readonly ledger: Ledger
  private readonly opts: Required<Omit<BroadcastOptions, 'ledger' | 'identity' | 'file'>> & Pick<BroadcastOptions, 'identity' | 'file'>
  private state?: BroadcastState
  private seq = 0
  private prev = ''
  /** queued payloads in order, mirrored in memory (stored: in the state file's queue) */
  private queue: Array<{qid: number; payload: Buffer; stored: boolean}> = []
  private queueBytes = 0
  private firstQueuedAt = 0
  /** outbox envelopes to (re)send, in seq order */
  private outbox: InFlight[] = []
  private sending = false
  private timer?: NodeJS.Timeout
  private readonly waiters = new Map<number, Waiter>()
  /** ids of journaled payloads: far below any queue row id (requeue() may go a little below 1) */
  private nextJournaled = -(2 ** 52)
  private readonly pendingHashes = new Map<string, number>()
  private idle: Array<{resolve: () => void; reject: (e: Error) => void}> = []
  private opened = false
  private closed = false
  private readonly stopRetries = new AbortController()

  constructor(opts: BroadcastOptions) {
    this.ledger = opts.ledger
    this.pid = opts.identity.pid
    this.opts = {
      identity: opts.identity,
      file: opts.file,
      flushMs: opts.flushMs ?? 20,
      maxBatch: opts.maxBatch ?? 1000,
      maxBatchBytes: opts.maxBatchBytes ?? 1024 * 1024,
      retryMs: opts.retryMs ?? 50,
    }
  }

  /** Open (or create) state and recover; resolves when recovery is done (re-sending continues in the background). */
  async open(): Promise<this> {
    if (this.opened) return this
    const st = new BroadcastState(this.opts.file, this.pid, this.ledger.ledgerId)
    this.state = st
    try {
      const pos = st.position()
      this.seq = pos.seq
      this.prev = pos.prev
      await this.recover(pos.scanEpoch)
    } catch (error) {
      st.close()
      throw error
    }
    for (const row of st.queued()) this.remember({qid: row.id, payload: row.payload, stored: true})
    this.opened = true
    this.pump()
    return this
  }

  /**
   * Look at the ledger from scanEpoch on for this sender's envelopes: drop
   * outbox entries already committed, adopt a higher seq found there, and
   * queue the rest of the outbox for re-sending.
   */
  private async recover(scanEpoch: number): Promise<void> {
    const st = this.state!
    const rows = st.outbox().map((row) => {
      const d = decodeEnvelope(row.envelope)
      if (!d.ok) throw new CorruptStateError(this.opts.file, `outbox envelope seq ${row.seq} is unreadable: ${d.reason}`)
      return {row, envelope: d.envelope, id: envelopeId(d.envelope)}
    })
    const waiting = new Map(rows.map((r) => [r.id, r.row.seq]))
    const found = new Map<number, number>() // outbox seq -> epoch it was committed in
    const needle = Buffer.from(`"pid":"${this.pid}"`)
    let top: {seq: number; id: string} | null = null
    let head = scanEpoch
    for await (const b of this.ledger.read(scanEpoch)) {
      head = b.epoch
      for (const tx of b.txs) {
        if (tx.payload.indexOf(needle) < 0) continue // cheap pre-filter before decoding
        const d = decodeEnvelope(tx.payload)
        if (!d.ok || d.envelope.pid !== this.pid || !verifyEnvelope(d.envelope)) continue
        const id = envelopeId(d.envelope)
        const seq = waiting.get(id)
        if (seq !== undefined && !found.has(seq)) found.set(seq, b.epoch)
        if (!top || d.envelope.seq > top.seq) top = {seq: d.envelope.seq, id}
      }
    }
    if (top && top.seq > this.seq) {
      st.adopt(top.seq, top.id)
      this.seq = top.seq
      this.prev = top.id
    }
    for (const {row, envelope} of rows) {
      const epoch = found.get(row.seq)
      if (epoch !== undefined) {
        st.confirm(row.seq, epoch)
      } else if (row.seq <= (top?.seq ?? 0)) {
        // The local state was older than the ledger: this seq is taken by
        // another envelope of ours. Its payloads go back to the queue.
        st.requeue(row.seq, envelope.payloads)
      } else {
        this.outbox.push({seq: row.seq, envelope, bytes: row.envelope, qids: envelope.payloads.map(() => -1)})
        for (const p of envelope.payloads) this.countPending(p, +1)
      }
    }
    st.setScanEpoch(head)
  }

  private countPending(payload: Buffer, delta: number): void {
    const h = pendingKey(payload)
    const n = (this.pendingHashes.get(h) ?? 0) + delta
    if (n <= 0) this.pendingHashes.delete(h)
    else this.pendingHashes.set(h, n)
  }

  private remember(item: {qid: number; payload: Buffer; stored: boolean}): void {
    if (this.queue.length === 0) this.firstQueuedAt = performance.now()
    this.queue.push(item)
    this.queueBytes += item.payload.length
    this.countPending(item.payload, +1)
  }

  private watch(qid: number): Promise<Delivery> {
    const p = new Promise<Delivery>((resolve, reject) => this.waiters.set(qid, {resolve, reject}))
    // Callers may drop the promise; a rejection at close() must not crash the process.
    p.catch(() => {})
    return p
  }

  /**
   * Queue one payload. It is in the state file when this returns (a crash
   * afterwards loses nothing); the promise resolves once its envelope is
   * committed on the ledger.
   */
  broadcast(payload: Buffer): Promise<Delivery> {
    this.assertOpen()
    if (!(payload instanceof Uint8Array)) throw new PacioError('EINPUT', 'broadcast() takes a Buffer')
    const buf = Buffer.from(payload)
    const qid = this.state!.enqueue(buf)
    this.remember({qid, payload: buf, stored: true})
    const p = this.watch(qid)
    this.pump()
    return p
  }

  /** Queue several payloads in one state-file transaction; same guarantees as broadcast(). */
  broadcastMany(payloads: Buffer[]): Array<Promise<Delivery>> {
    this.assertOpen()
    for (const p of payloads) if (!(p instanceof Uint8Array)) throw new PacioError('EINPUT', 'broadcastMany() takes Buffers')
    const bufs = payloads.map((p) => Buffer.from(p))
    const qids = this.state!.enqueueMany(bufs)
    const out = qids.map((qid, i) => {
      this.remember({qid, payload: bufs[i], stored: true})
      return this.watch(qid)
    })
    this.pump()
    return out
  }

  /**
   * Queue payloads that the caller has already made durable itself (the
   * volume's journal): they are not written to the state file until they are
   * sealed into an envelope, which saves one SQLite transaction per call. A
   * crash may lose them from the queue; the caller must then find which of
   * its payloads are not on the ledger and send those again (Recorder.recover
   * does). Same ordering as broadcastMany(); each outcome goes to
   * `sink` with the payload's tag (tags[i]), not to a promise per payload.
   * The Buffers are kept as they are: the caller must not change them.
   */
  broadcastJournaled(payloads: Buffer[], sink: DeliverySink, tags: readonly number[]): void {
    this.assertOpen()
    if (tags.length !== payloads.length) throw new PacioError('EINPUT', 'broadcastJournaled() takes one tag per payload')
    for (const p of payloads) if (!Buffer.isBuffer(p)) throw new PacioError('EINPUT', 'broadcastJournaled() takes Buffers')
    for (let i = 0; i < payloads.length; i++) {
      const qid = this.nextJournaled++
      this.remember({qid, payload: payloads[i], stored: false})
      this.waiters.set(qid, new SinkWaiter(sink, tags[i]))
    }
    this.pump()
  }

  /** True while a payload with these bytes is queued or in the outbox (not yet seen committed). */
  isPending(payload: Buffer): boolean {
    return this.pendingHashes.has(pendingKey(payload))
  }

  /** Resolves when everything queued so far is committed. */
  flush(): Promise<void> {
    this.assertOpen()
    if (this.queue.length === 0 && this.outbox.length === 0 && !this.sending) return Promise.resolve()
    const p = new Promise<void>((resolve, reject) => this.idle.push({resolve, reject}))
    if (this.timer) {
      clearTimeout(this.timer)
      this.timer = undefined
    }
    this.firstQueuedAt = -Infinity // cut now rather than wait for the window
    this.pump()
    return p
  }

  private assertOpen(): void {
    if (!this.opened) throw new PacioError('EINTERNAL', 'Broadcast used before open()')
    if (this.closed) throw new PacioError('ELEDGER', 'Broadcast is closed')
  }

  private pump(): void {
    if (this.sending || this.closed || !this.opened) return
    if (this.outbox.length === 0 && this.queue.length > 0) {
      const ready = this.queue.length >= this.opts.maxBatch || this.queueBytes >= this.opts.maxBatchBytes
      const waited = performance.now() - this.firstQueuedAt
      if (!ready && waited < this.opts.flushMs) {
        if (!this.timer) {
          this.timer = setTimeout(() => {
            this.timer = undefined
            this.pump()
          }, this.opts.flushMs - waited)
        }
        return
      }
      this.cut()
    }
    const next = this.outbox[0]
    if (!next) {
      for (const w of this.idle.splice(0)) w.resolve()
      return
    }
    this.sending = true
    void this.send(next)
  }

  /** Seal the front of the queue into the next envelope, persisted in the outbox. */
  private cut(): void {
    let n = 0
    let bytes = 0
    while (n < this.queue.length && n < this.opts.maxBatch && (n === 0 || bytes + this.queue[n].payload.length <= this.opts.maxBatchBytes)) {
      bytes += this.queue[n].payload.length
      n++
    }
    const items = this.queue.splice(0, n)
    this.queueBytes -= bytes
    this.firstQueuedAt = performance.now()
    const seq = this.seq + 1
    const envelope = signEnvelope(this.opts.identity, {seq, prev: this.prev, payloads: items.map((i) => i.payload)})
    const bytesOut = encodeEnvelope(envelope)
    const id = envelopeId(envelope)
    // the queue rows this envelope takes out of the state file (journaled payloads have none)
    let first = 0
    let last = -1
    let any = false
    for (const i of items) {
      if (!i.stored) continue
      if (!any) first = i.qid
      any = true
      last = i.qid
    }
    if (!any) last = first - 1
    this.state!.seal(seq, id, bytesOut, first, last)
    this.seq = seq
    this.prev = id
    this.outbox.push({seq, envelope, bytes: bytesOut, qids: items.map((i) => i.qid)})
  }

  private async send(f: InFlight): Promise<void> {
    let delay = this.opts.retryMs
    for (;;) {
      if (this.closed) return
      try {
        const [c] = await this.ledger.append([f.bytes])
        if (this.closed) return
        this.state!.confirm(f.seq, c.epoch)
        this.outbox.shift()
        f.envelope.payloads.forEach((payload, index) => {
          this.countPending(payload, -1)
          const w = this.waiters.get(f.qids[index])
          if (!w) return
          this.waiters.delete(f.qids[index])
          w.resolve({pid: this.pid, epoch: c.epoch, txid: c.txid, seq: f.seq, index, payload})
        })
        break
      } catch {
        // The envelope stays in the outbox; try again until the ledger takes it
        // (or close() aborts the wait).
        await sleep(delay, undefined, {signal: this.stopRetries.signal}).catch(() => {})
        delay = Math.min(delay * 2, 5000)
      }
    }
    this.sending = false
    this.pump()
  }

  /** Deliveries from the ledger this sender broadcasts on (see deliver.ts). */
  deliver(fromEpoch: number, onDelivery: (d: Delivery) => void, onViolation: (v: Violation) => void, opts: DeliverOptions = {}): DeliveryStream {
    return deliver(this.ledger, fromEpoch, onDelivery, onViolation, opts)
  }

  /**
   * Stop sending and close the state file. Payloads not yet committed stay
   * persisted and are sent after the next open(); their promises reject now.
   * Does not close the ledger.
   */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.timer) clearTimeout(this.timer)
    this.stopRetries.abort()
    const error = new PacioError('ELEDGER', 'Broadcast closed before the payload was committed; it is re-sent on the next open()')
    for (const w of this.waiters.values()) w.reject(error)
    this.waiters.clear()
    for (const w of this.idle.splice(0)) w.reject(error)
    this.state?.close()
  }
}
