import {expect} from 'chai'
import type {Connection} from '../../../src/remote/connection.js'
import {RemoteVolume} from '../../../src/remote/remote-volume.js'
import {errnoError, statToWire} from '../../../src/remote/wire.js'
import {statSync} from 'node:fs'

const who = {uid: 0, gid: 0, pid: 1}
const wireStat = statToWire(statSync('/', {bigint: true}))

/** The data length of a hand-encoded WriteRequest whose data is all 0xab (the header holds no 0xab). */
const dataLength = (msg: Buffer) => msg.length - msg.indexOf(0xab)

/** A fake connection: answers like a server, records every call (method, deadline extension). */
function fakeConn(opts: {failWrite?: boolean} = {}) {
  const calls: Array<{method: string; extraMs: number}> = []
  let names = 100n // the server's namespace version (another client's change: bump it in between)
  const conn = {
    bumpNames: () => names++,
    generation: 1,
    maxChunk: 1024 * 1024,
    async call(method: string, req: Record<string, any>, extraMs = 0) {
      calls.push({method, extraMs})
      switch (method) {
        case 'Create': return {fh: '7', stat: wireStat, parent: wireStat, names_version: String(++names)}
        case 'Mkdir': case 'Unlink': case 'Rmdir': case 'Mknod': case 'Symlink': return {parent: wireStat, names_version: String(++names)}
        case 'Link': case 'Rename': names++; return {}
        case 'Write': {
          if (opts.failWrite) throw errnoError('ENOSPC', 'disk full')
          return {count: dataLength(req as unknown as Buffer)}
        }
        case 'Getattr': if (String(req.path).includes('missing')) throw errnoError('ENOENT', 'no such file'); return {stat: wireStat}
        case 'Fgetattr': return {stat: wireStat}
        default: return {}
      }
    },
    async openDuplex() {
      return undefined // a protocol-1 server: every write a Write call
    },
    errno: (e: unknown) => e,
    close() {},
  }
  return {conn, calls}
}

describe('remote: RemoteVolume over a fake connection', () => {
  it('in a directory it made, a name it did not create is answered ENOENT without a call, until another client changes a name', async () => {
    const {conn, calls} = fakeConn()
    const v = new RemoteVolume(conn as unknown as Connection)
    const code = (p: Promise<unknown>) => p.then(() => 'ok', (error: NodeJS.ErrnoException) => error.code)
    await v.mkdir('/d', 0o755, who)
    expect(await code(v.getattr('/d/missing1'))).to.equal('ENOENT')
    const fh = await v.create('/d/missing1', 0o644, 0o1, who)
    await v.release('/d/missing1', fh)
    expect(await code(v.getattr('/d/missing2'))).to.equal('ENOENT')
    await v.unlink('/d/missing1', who)
    expect(calls.map(c => c.method).filter(m => m !== 'Release')).to.deep.equal(['Mkdir', 'Create', 'Unlink'])
    // the created name is known to exist: asked (here the fake server says it is gone)
    await v.create('/d/f', 0o644, 0o1, who)
    await new Promise(r => setTimeout(r, 600)) // past the attribute cache
    expect(await code(v.getattr('/d/f'))).to.equal('ok')
    expect(calls.at(-1)!.method).to.equal('Getattr')

    // another client's change: a gap in the versions, and lookups go to the server again
    conn.bumpNames()
    await v.unlink('/d/f', who)
    calls.length = 0
    expect(await code(v.getattr('/d/missing3'))).to.equal('ENOENT')
    expect(calls.map(c => c.method)).to.deep.equal(['Getattr'])

    // a rename forgets what was known
    await v.mkdir('/e', 0o755, who)
    await v.rename('/d', '/e/x', who)
    calls.length = 0
    expect(await code(v.getattr('/e/missing4'))).to.equal('ENOENT')
    expect(calls.map(c => c.method)).to.deep.equal(['Getattr'])
  })

  it('create answers the kernel\'s next getattr of the file and of its directory without a call; a write makes them ask again', async () => {
    const {conn, calls} = fakeConn()
    const v = new RemoteVolume(conn as unknown as Connection)
    const fh = await v.create('/d/f', 0o644, 0o1, who)
    await v.fgetattr('/d/f', fh)
    await v.getattr('/d')
    expect(calls.map(c => c.method)).to.deep.equal(['Create'])
    await v.write('/d/f', fh, Buffer.alloc(10, 0xab), 10, 0, who)
    await v.fgetattr('/d/f', fh)
    expect(calls.map(c => c.method)).to.include('Fgetattr')
  })

  it('a write the server refused is reported by fsync; fsync\'s deadline grows with the data written before it', async () => {
    const failing = fakeConn({failWrite: true})
    const v = new RemoteVolume(failing.conn as unknown as Connection)
    const fh = await v.create('/f', 0o644, 0o1, who)
    expect(await v.write('/f', fh, Buffer.alloc(4096), 4096, 0, who)).to.equal(4096) // written behind
    const e = await v.fsync('/f', fh, false).then(() => undefined, (error: NodeJS.ErrnoException) => error)
    expect(e?.code).to.equal('ENOSPC')

    const {conn, calls} = fakeConn()
    conn.call = (async function (this: unknown, method: string, req: Record<string, any>, extraMs = 0) {
      calls.push({method, extraMs})
      if (method === 'Create') return {fh: '1', stat: wireStat, parent: wireStat}
      if (method === 'Write') return {count: dataLength(req as unknown as Buffer)}
      return {}
    }) as typeof conn.call
    const w = new RemoteVolume(conn as unknown as Connection)
    const h = await w.create('/g', 0o644, 0o1, who)
    const mib = Buffer.alloc(1024 * 1024, 0xab)
    for (let i = 0; i < 4; i++) await w.write('/g', h, mib, mib.length, i * mib.length, who)
    await w.fsync('/g', h, false)
    const fsync = calls.find(c => c.method === 'Fsync')!
    expect(fsync.extraMs).to.be.closeTo(2000, 1) // 4 MiB at 1 s per 2 MiB
    await w.release('/g', h)
    expect(calls.find(c => c.method === 'Release')!.extraMs).to.equal(0) // nothing written since the fsync
  })
})
