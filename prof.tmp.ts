import {startHarness} from './test/integration/remote/harness.ts'
import {mkdtempSync} from 'node:fs'
const h = await startHarness(mkdtempSync('/tmp/sv/prof/h'), ['vol'])
const c = await h.connect(h.owner, 'vol')
const caller = {uid: 0, gid: 0, pid: 1}
for (const label of ['warm', 'run']) {
  const N = 3000
  let t = performance.now()
  const cpu0 = process.cpuUsage()
  for (let i = 0; i < N / 100; i++) await Promise.all(Array.from({length: 100}, () => c.call('Getattr', {path: '/'})))
  const cpu = process.cpuUsage(cpu0)
  console.log(label, 'getattr x100 parallel', ((performance.now() - t) / N).toFixed(3), 'ms/op wall;', ((cpu.user + cpu.system) / 1000 / N).toFixed(3), 'ms cpu/op (client+server)')
  const {fh} = await c.call('Create', {path: '/f' + label, flags: 1, mode: 0o644, caller})
  const buf = Buffer.alloc(1024 * 1024)
  t = performance.now()
  for (let i = 0; i < 64; i++) await c.call('Write', {fh, data: buf, offset: i * buf.length, caller})
  console.log(label, 'write 1MiB seq', (64 / ((performance.now() - t) / 1000)).toFixed(0), 'MB/s')
  t = performance.now()
  await Promise.all(Array.from({length: 64}, (_, i) => c.call('Write', {fh, data: buf, offset: i * buf.length, caller})))
  console.log(label, 'write 1MiB x64 parallel', (64 / ((performance.now() - t) / 1000)).toFixed(0), 'MB/s')
  await c.call('Release', {fh})
}
await h.close()
