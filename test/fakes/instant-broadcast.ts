/** A BroadcastPort that commits every payload at once, in order: for volume tests that do not exercise the ledger. */
import {createHash} from 'node:crypto'
import type {Delivery, DeliverySink} from '../../src/broadcast/types.js'
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

  broadcastJournaled(payloads: Buffer[], sink: DeliverySink, tags: readonly number[]): void {
    payloads.forEach((p, i) => {
      void this.broadcast(p).then(d => sink.delivered(tags[i], d))
    })
  }

  async flush(): Promise<void> {}
}
