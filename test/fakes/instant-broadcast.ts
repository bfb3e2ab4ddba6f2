/** A BroadcastPort that commits every payload at once, in order: for volume tests that do not exercise the ledger. */
import {createHash} from 'node:crypto'
import type {Delivery} from '../../src/broadcast/types.js'
import type {BroadcastPort} from '../../src/volume/recorder.js'

export class InstantBroadcast implements BroadcastPort {
  readonly pid = 'f'.repeat(64)
  readonly delivered: Delivery[] = []
  private seq = 0

  async broadcast(payload: Buffer): Promise<Delivery> {
    const seq = ++this.seq
    const d: Delivery = {pid: this.pid, epoch: seq, txid: createHash('sha256').update(payload).digest('hex'), seq, index: 0, payload}
    this.delivered.push(d)
    return d
  }

  broadcastJournaled(payloads: Buffer[]): Array<Promise<Delivery>> {
    return payloads.map(p => this.broadcast(p))
  }

  async flush(): Promise<void> {}
}
