// temporary: remote read with the FUSE bdi read_ahead_kb at 128 vs larger
import {execFileSync} from 'node:child_process'
import {mkdtemp, writeFile, readFile, statSync} from 'node:fs'
import {join} from 'node:path'
import {tmpdir, loadavg} from 'node:os'
import fs from 'node:fs'
import {mountRemote, startServe} from '../test/helpers/remote.js'
import {removeTree} from '../test/helpers/tmp.js'

const root = fs.mkdtempSync(join(tmpdir(), 'ra-'))
const config = join(root, 'config')
const server = await startServe([join(root, 'vol')], {configDir: config})
const m = await mountRemote(server, 'vol', join(root, 'mnt'), {configDir: config})
try {
  const f = join(m.mountpoint, 'big')
  execFileSync('dd', ['if=/dev/zero', `of=${f}`, 'bs=1M', `count=${process.argv[2] ?? 128}`, 'conv=fsync'], {stdio: 'ignore'})
  const dev = statSync(m.mountpoint).dev
  const bdi = `/sys/class/bdi/${Math.floor(dev / 256) & 0xfff}:${(dev & 0xff) | ((dev >> 12) & 0xfff00)}/read_ahead_kb`
  console.log('bdi', bdi, fs.readFileSync(bdi, 'utf8').trim())
  for (let r = 0; r < 2; r++) {
    for (const kb of [128, 1024, 4096]) {
      fs.writeFileSync(bdi, String(kb))
      fs.writeFileSync('/proc/sys/vm/drop_caches', '3')
      const t0 = performance.now()
      execFileSync('dd', [`if=${f}`, 'of=/dev/null', 'bs=1M'], {stdio: 'ignore'})
      const s = (performance.now() - t0) / 1000
      console.log(`read_ahead_kb ${kb}: ${(Number(process.argv[2] ?? 128) * 1.048576 / s).toFixed(1)} MB/s load ${loadavg()[0].toFixed(1)}`)
    }
  }
} finally {
  await m.stop()
  await server.stop()
  await removeTree(root)
}
