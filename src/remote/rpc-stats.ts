/**
 * PACIOFS_RPC_STATS=FILE: count and time every RPC (the client: round trip
 * per method; the server: handler time per method) and write the totals to
 * FILE when the connection or server closes. A diagnostic for benchmarks and
 * tests; without the variable nothing is measured.
 */
import fs from 'node:fs'

export interface RpcStats {
  /** Starts timing one call; the returned function ends it. */
  start(method: string): () => void
  /** Writes the totals (once). */
  write(): void
}

const NOOP = (): void => {}

export function rpcStats(role: 'client' | 'server'): RpcStats {
  const file = process.env.PACIOFS_RPC_STATS
  if (!file) return {start: () => NOOP, write: NOOP}
  const totals = new Map<string, {count: number; ms: number; maxMs: number}>()
  let written = false
  return {
    start(method) {
      const t0 = performance.now()
      return () => {
        const ms = performance.now() - t0
        const t = totals.get(method) ?? {count: 0, ms: 0, maxMs: 0}
        t.count++
        t.ms += ms
        t.maxMs = Math.max(t.maxMs, ms)
        totals.set(method, t)
      }
    },
    write() {
      if (written) return
      written = true
      const out: Record<string, {count: number; ms: number; meanMs: number; maxMs: number}> = {}
      for (const [m, t] of totals) out[m] = {count: t.count, ms: Math.round(t.ms), meanMs: Math.round((t.ms / t.count) * 100) / 100, maxMs: Math.round(t.maxMs)}
      try {
        fs.writeFileSync(`${file}.${role}.${process.pid}.json`, JSON.stringify(out, null, 1) + '\n')
      } catch { /* a diagnostic only */ }
    },
  }
}
