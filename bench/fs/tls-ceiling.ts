/**
 * The transport's ceiling on this machine: how fast one Node process sends
 * bytes to another over TLS on loopback (1 MiB writes, no framing beyond
 * TLS), with the server's own key and certificate. A remote mount moves its
 * data through such a connection (plus HTTP/2 and gRPC framing), so its
 * throughput cannot exceed this; benchmarks print it beside their figures.
 */
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {runNode} from '../../test/helpers/exec.js'

const CHILD = `
const READER = \`
const tls = require('tls')
const t0 = performance.now()
let got = 0
const c = tls.connect({port: +process.argv[1], host: '127.0.0.1', ca: process.argv[2], checkServerIdentity: () => undefined})
c.on('data', d => (got += d.length))
c.on('end', () => process.stdout.write(String(got / 1e6 / ((performance.now() - t0) / 1000))))
\`
const tls = require('tls'), fs = require('fs')
const [stateDir, mib] = [process.argv[1], +process.argv[2]]
const key = fs.readFileSync(stateDir + '/tls.key'), cert = fs.readFileSync(stateDir + '/tls.crt')
const chunk = Buffer.alloc(1 << 20, 7)
const server = tls.createServer({key, cert}, s => {
  let sent = 0
  const go = () => { while (sent < mib) { sent++; if (!s.write(chunk)) return s.once('drain', go) } s.end() }
  go()
})
server.listen(0, '127.0.0.1', () => {
  const reader = require('child_process').spawn(process.execPath, ['-e', READER, String(server.address().port), cert.toString()], {stdio: ['ignore', 'pipe', 'inherit']})
  let out = ''
  reader.stdout.on('data', d => (out += d))
  reader.on('exit', code => {
    server.close()
    if (code !== 0) process.exit(1)
    process.stdout.write(JSON.stringify({mbps: Number(out)}))
    process.exit(0)
  })
})
`

/** MB/s from one process to another over TLS on loopback. */
export async function tlsCeiling(stateDir: string, mib: number, timeoutMs: number): Promise<number> {
  readFileSync(join(stateDir, 'tls.crt')) // a clear error if the server has not made its certificate
  const res = await runNode(CHILD, [stateDir, String(mib)], {timeoutMs})
  if (res.code !== 0) throw new Error(`TLS ceiling measurement failed (${res.code}): ${res.stderr.trim()}`)
  return (JSON.parse(res.stdout) as {mbps: number}).mbps
}
