/**
 * Where the ledger holds each record hash: its position in ledger order and
 * the transaction it came in (shared by all the records of an envelope).
 * A volume has one per record (200,000 for 100,000 files), so this is an
 * open-addressing table over one buffer of 32-byte keys and typed arrays,
 * a few tens of bytes per record rather than a map entry, a key string and
 * an object. Payloads of another length (never a record hash, but the ledger
 * may hold anything) go to a plain map.
 */
import type {RecordRef} from './types.js'

const KEY = 32

export class Anchors {
  private keys = Buffer.alloc(KEY * 1024) // the key of position i at i * KEY
  private slots = new Int32Array(2048) // position + 1, 0 = empty
  private txOf = new Int32Array(1024)
  private matched = new Uint8Array(1024) // 1: a journal row accounted for it (or a later copy replaced it)
  private readonly odd = new Map<string, number>() // latin1 key -> position, payloads that are not KEY bytes
  private readonly txs: Array<{epoch: number; txid: string; pid: string}> = []
  private readonly strings = new Map<string, string>()
  /** recordRef's references made for transaction refTx */
  private readonly refs: RecordRef[] = []
  private refTx = -1
  /** positions handed out */
  size = 0

  add(payload: Buffer, epoch: number, txid: string, pid: string): void {
    const last = this.txs.at(-1)
    if (!last || last.epoch !== epoch || last.txid !== txid) this.txs.push({epoch, txid, pid})
    this.put(payload)
  }

  /** The payloads of one transaction, in order. */
  addAll(payloads: readonly Buffer[], epoch: number, txid: string, pid: string): void {
    if (payloads.length === 0) return
    const last = this.txs.at(-1)
    if (!last || last.epoch !== epoch || last.txid !== txid) this.txs.push({epoch, txid, pid})
    while (this.size + payloads.length > this.txOf.length) this.growArrays()
    if ((this.size + payloads.length) * 2 >= this.slots.length) {
      let cap = this.slots.length
      while ((this.size + payloads.length) * 2 >= cap) cap *= 2
      this.rehash(cap)
    }

    for (const p of payloads) this.put(p)
  }

  private put(payload: Buffer): void {
    const pos = this.size++
    if (pos === this.txOf.length) this.growArrays()
    this.txOf[pos] = this.txs.length - 1
    if (payload.length !== KEY) {
      const k = payload.toString('latin1')
      const had = this.odd.get(k)
      if (had !== undefined) this.matched[had] = 1 // the later copy stands for it
      this.odd.set(k, pos)
      return
    }

    this.keys.set(payload, pos * KEY)
    if (pos * 2 >= this.slots.length) this.rehash(this.slots.length * 2)
    const s = this.find(payload)
    if (this.slots[s] !== 0) this.matched[this.slots[s] - 1] = 1
    this.slots[s] = pos + 1
  }

  /** The position of a record hash on the ledger, or undefined. */
  get(hash: Buffer): number | undefined {
    if (hash.length !== KEY) return this.odd.get(hash.toString('latin1'))
    const p = this.slots[this.find(hash)]
    return p === 0 ? undefined : p - 1
  }

  /** A journal row has this hash: it is not "missing". */
  markMatched(pos: number): void {
    this.matched[pos] = 1
  }

  /** Positions no journal row accounted for, in ledger order, with their key. */
  * unmatched(): Generator<[number, Buffer]> {
    for (let pos = 0; pos < this.size; pos++) if (!this.matched[pos]) yield [pos, this.key(pos)]
  }

  /** Every key in ledger order. */
  * all(): Generator<Buffer> {
    for (let pos = 0; pos < this.size; pos++) yield this.key(pos)
  }

  ref(pos: number): RecordRef {
    const t = this.txs[this.txOf[pos]]
    return {epoch: t.epoch, txid: t.txid, author: t.pid}
  }

  /**
   * The reference a replayed record carries: where it sits, and who made it
   * (the author interned). Records of one transaction with the same author,
   * uid and op share one object (a transaction holds up to thousands of
   * records, of a few kinds): references are never changed once made.
   */
  recordRef(pos: number, author: string, uid: number | undefined, op: string): RecordRef {
    const tx = this.txOf[pos]
    const a = this.intern(author)
    if (tx !== this.refTx) {
      this.refTx = tx
      this.refs.length = 0
    }

    for (const r of this.refs) if (r.author === a && r.uid === uid && r.op === op) return r
    const t = this.txs[tx]
    const ref: RecordRef = {epoch: t.epoch, txid: t.txid, author: a, uid, op}
    if (this.refs.length < 16) this.refs.push(ref)
    return ref
  }

  /** One copy of each author key, rather than one per record. */
  intern(s: string): string {
    const had = this.strings.get(s)
    if (had !== undefined) return had
    if (this.strings.size < 65_536) this.strings.set(s, s)
    return s
  }

  private key(pos: number): Buffer {
    for (const [k, p] of this.odd) if (p === pos) return Buffer.from(k, 'latin1')
    return Buffer.from(this.keys.subarray(pos * KEY, pos * KEY + KEY))
  }

  /** The slot holding this key, or the empty slot where it would go. */
  private find(k: Buffer, off = 0): number {
    const mask = this.slots.length - 1
    for (let s = k.readUInt32LE(off) & mask; ; s = (s + 1) & mask) {
      const p = this.slots[s]
      if (p === 0 || this.keyIs(k, off, p - 1)) return s
    }
  }

  /** k equals the key at pos (a loop over 32 bytes costs less than a call of Buffer.compare). */
  private keyIs(k: Buffer, off: number, pos: number): boolean {
    const keys = this.keys
    const at = pos * KEY
    for (let i = 0; i < KEY; i++) if (keys[at + i] !== k[off + i]) return false
    return true
  }

  private rehash(capacity: number): void {
    const old = this.slots
    this.slots = new Int32Array(capacity)
    for (const p of old) {
      if (p === 0) continue
      this.slots[this.find(this.keys, (p - 1) * KEY)] = p
    }
  }

  private growArrays(): void {
    const n = this.txOf.length * 2
    const keys = Buffer.allocUnsafe(n * KEY) // only positions below size are read, and each is written first
    keys.set(this.keys)
    this.keys = keys
    const txOf = new Int32Array(n)
    txOf.set(this.txOf)
    this.txOf = txOf
    const matched = new Uint8Array(n)
    matched.set(this.matched)
    this.matched = matched
  }
}
