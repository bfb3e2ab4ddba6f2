import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {Broadcast, type BroadcastOptions} from '../../../src/broadcast/broadcast.js'
import {deliver, type DeliverOptions} from '../../../src/broadcast/deliver.js'
import type {Delivery, Violation} from '../../../src/broadcast/types.js'
import {generateIdentity} from '../../../src/crypto/sign.js'
import type {Ledger} from '../../../src/ledger/types.js'

export function tempDir(prefix: string): {dir: string; cleanup: () => void} {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  return {dir, cleanup: () => rmSync(dir, {recursive: true, force: true})}
}

export async function openSenders(
  ledger: Ledger,
  dir: string,
  n: number,
  opts: Partial<Omit<BroadcastOptions, 'ledger' | 'identity' | 'file'>> = {},
): Promise<Broadcast[]> {
  const out: Broadcast[] = []
  for (let i = 0; i < n; i++) {
    out.push(await new Broadcast({ledger, identity: generateIdentity(), file: join(dir, `sender-${i}.db`), ...opts}).open())
  }
  return out
}

export async function collect(ledger: Ledger, from = 0, opts: DeliverOptions = {}): Promise<{deliveries: Delivery[]; violations: Violation[]}> {
  const deliveries: Delivery[] = []
  const violations: Violation[] = []
  await deliver(ledger, from, (d) => deliveries.push(d), (v) => violations.push(v), opts).done
  return {deliveries, violations}
}

/** A comparable rendering of a delivery sequence. */
export function render(ds: Delivery[]): string[] {
  return ds.map((d) => `${d.pid.slice(0, 8)}:${d.epoch}:${d.seq}:${d.index}:${d.payload.toString('hex')}`)
}

export function byPid(ds: Delivery[]): Map<string, string[]> {
  const m = new Map<string, string[]>()
  for (const d of ds) {
    const list = m.get(d.pid) ?? []
    list.push(d.payload.toString())
    m.set(d.pid, list)
  }
  return m
}
