// temporary: unary vs streamed writes through RemoteVolume against an in-process server
import {join} from 'node:path'
import {mkdtemp} from 'node:fs/promises'
import {tmpdir, loadavg} from 'node:os'
import {startHarness} from '../test/integration/remote/harness.js'
import {RemoteVolume} from '../src/remote/remote-volume.js'
import {removeTree} from '../test/helpers/tmp.js'

const MiB = Number(process.argv[2] ?? 256)
const reps = Number(process.argv[3] ?? 2)
const dir = await mkdtemp(join(tmpdir(), 'wmicro-'))
const h = await startHarness(dir, ['vol'])
const who = {uid: 0, gid: 0, pid: 1}
const buf = Buffer.alloc(128 * 1024, 9)
for (let r = 0; r < reps; r++) {
  for (const proto of (process.env.PROTOS ?? "1,2").split(",").map(Number)) {
    const c = await h.connect(h.owner, 'vol')
    c.protocol = proto
    const v = new RemoteVolume(c)
    const t0 = performance.now()
    const cpu0 = process.cpuUsage()
    const fh = await v.create(`/f-${r}-${proto}`, 0o644, 1, who)
    for (let off = 0; off < MiB * 1048576; off += buf.length) await v.write('/f', fh, buf, buf.length, off, who)
    await v.flush('/f', fh)
    const ms = performance.now() - t0
    const u = process.cpuUsage(cpu0)
    await v.release('/f', fh)
    console.log(`protocol ${proto}: ${(MiB * 1.048576 / (ms / 1000)).toFixed(1)} MB/s, cpu ${((u.user + u.system) / 1e3 / MiB).toFixed(2)} ms/MiB (both ends, one process), load ${loadavg()[0].toFixed(1)}`)
    await v.close()
  }
}
await h.close()
await removeTree(dir)
process.exit(0)
