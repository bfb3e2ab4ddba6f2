import {expect} from 'chai'
import {spawn} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {Broadcast} from '../../../src/broadcast/broadcast.js'
import {generateIdentity, saveIdentity} from '../../../src/crypto/sign.js'
import {EmbeddedLedger} from '../../../src/ledger/embedded/index.js'
import {collect, tempDir} from './helpers.js'

const child = fileURLToPath(new URL('./crash-child.ts', import.meta.url))

/** Run the child until it has printed `ready`, then SIGKILL it after `afterMs`; returns the names it wrote as returned. */
function runAndKill(dir: string, start: number, afterMs: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', child, dir, String(start)], {stdio: ['ignore', 'pipe', 'pipe']})
    let out = ''
    let err = ''
    let armed = false
    p.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      if (!armed && out.includes('ready\n')) {
        armed = true
        setTimeout(() => p.kill('SIGKILL'), afterMs)
      }
    })
    p.stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString()
    })
    p.on('error', reject)
    p.on('close', (code, signal) => {
      if (signal !== 'SIGKILL') return reject(new Error(`child exited ${code} ${signal}: ${err}`))
      const lines = readFileSync(join(dir, `returned-${start}.txt`), 'utf8').split('\n')
      lines.pop() // a line cut by the kill is not a returned call
      resolve(lines.filter((l) => l.startsWith('p')))
    })
  })
}

describe('broadcast: crash (SIGKILL) loses no returned broadcast', function () {
  this.timeout(120_000)

  it('every payload whose broadcast() returned is delivered exactly once after reopening', async () => {
    const t = tempDir('pacio-crash-')
    try {
      const identity = generateIdentity()
      saveIdentity(join(t.dir, 'id.pem'), identity)
      // two crashes in a row: the second run recovers from the first, then dies too
      const first = await runAndKill(t.dir, 0, 300 + Math.floor(Math.random() * 700))
      const second = await runAndKill(t.dir, 1_000_000, 200 + Math.floor(Math.random() * 500))
      expect(first.length, 'first child returned nothing').to.be.above(0)
      expect(second.length, 'second child returned nothing').to.be.above(0)

      // the crashed ledger is consistent as it lies (read-only audit, nothing re-sent yet)
      const before = await EmbeddedLedger.openReadOnly(join(t.dir, 'ledger.db'))
      await before.validateAll()
      expect((await collect(before)).violations).to.deep.equal([])
      await before.close()
      const ledger = await EmbeddedLedger.open({file: join(t.dir, 'ledger.db'), ledgerId: 'crash-vol', identity})
      const bc = await new Broadcast({ledger, identity, file: join(t.dir, 'broadcast.db'), flushMs: 1}).open()
      await bc.flush()
      const {deliveries, violations} = await collect(ledger)
      await bc.close()
      await ledger.close()

      expect(violations).to.deep.equal([])
      const counts = new Map<string, number>()
      for (const d of deliveries) counts.set(d.payload.toString(), (counts.get(d.payload.toString()) ?? 0) + 1)
      const missing = [...first, ...second].filter((name) => counts.get(name) !== 1)
      expect(missing, `not delivered exactly once: ${missing.slice(0, 5).join(', ')}`).to.deep.equal([])
      // nothing beyond what the children attempted (at most one call each whose return was not yet written)
      const attempted = new Set([...first, ...second])
      const extra = [...counts.keys()].filter((k) => !attempted.has(k))
      expect(extra.length).to.be.at.most(2)
      for (const [name, n] of counts) expect(n, name).to.equal(1)
      // FIFO: each run's payloads arrive in the order they were broadcast
      const order = deliveries.map((d) => d.payload.toString())
      const idx = (name: string) => order.indexOf(name)
      for (const run of [first, second]) for (let i = 1; i < run.length; i++) expect(idx(run[i - 1]) < idx(run[i])).to.equal(true)
    } finally {
      t.cleanup()
    }
  })
})
