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

  describe('a write that fills a message is answered before the message is sent', () => {
    const MIB = 1024 * 1024
    /** Writes the server holds until `answer()`: each message's data is one byte value, its last byte says which. */
    function holdingConn(opts: {fail?: string} = {}) {
      const {conn, calls} = fakeConn()
      const held: Array<{tag: number; settle: () => void}> = []
      conn.call = (async function (method: string, req: Record<string, any>, extraMs = 0) {
        calls.push({method, extraMs})
        if (method === 'Create') return {fh: '1', stat: wireStat, parent: wireStat}
        if (method !== 'Write') return {}
        const msg = req as unknown as Buffer
        return new Promise((resolve, reject) => held.push({
          tag: msg[msg.length - 1],
          settle: () => (opts.fail ? reject(errnoError(opts.fail, 'refused')) : resolve({count: MIB})),
        }))
      }) as typeof conn.call
      const answer = async (n = 1) => {
        for (let i = 0; i < n; i++) held.shift()!.settle()
        await new Promise(r => setTimeout(r, 5))
      }

      return {conn, calls, held, answer}
    }

    /** Resolves with 'answered' if p settles within ms, else 'waiting'. */
    const within = (p: Promise<unknown>, ms = 30) => Promise.race([p.then(() => 'answered', () => 'answered'), new Promise(r => setTimeout(() => r('waiting'), ms))])
    const mib = (tag: number) => Buffer.alloc(MIB, tag)

    it('the writer is answered first; 8 messages in flight and 1 queued at most, in order; close waits for every answer', async () => {
      const {conn, calls, held, answer} = holdingConn()
      const v = new RemoteVolume(conn as unknown as Connection)
      const fh = await v.create('/f', 0o644, 0o1, who)
      expect(await v.write('/f', fh, mib(1), MIB, 0, who)).to.equal(MIB)
      expect(calls.filter(c => c.method === 'Write'), 'not sent yet when the write is answered').to.deep.equal([])
      for (let i = 1; i < 9; i++) expect(await within(v.write('/f', fh, mib(i + 1), MIB, i * MIB, who))).to.equal('answered')
      const tenth = v.write('/f', fh, mib(10), MIB, 9 * MIB, who)
      expect(await within(tenth), 'the tenth MiB waits: 8 in flight, 1 queued').to.equal('waiting')
      expect(held.map(h => h.tag)).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8])
      await answer()
      expect(await within(tenth)).to.equal('answered')
      expect(held.map(h => h.tag)).to.deep.equal([2, 3, 4, 5, 6, 7, 8, 9])
      const closed = v.flush('/f', fh)
      expect(await within(closed), 'close waits for the server').to.equal('waiting')
      await answer(8)
      expect(await within(closed)).to.equal('waiting')
      expect(held.map(h => h.tag)).to.deep.equal([10])
      await answer()
      expect(await within(closed)).to.equal('answered')
    })

    it('a failure of a message sent behind reaches the writer at its next write, close or fsync', async () => {
      for (const next of ['write', 'flush', 'fsync'] as const) {
        const {conn, answer} = holdingConn({fail: 'ENOSPC'})
        const v = new RemoteVolume(conn as unknown as Connection)
        const fh = await v.create('/f', 0o644, 0o1, who)
        expect(await v.write('/f', fh, mib(1), MIB, 0, who)).to.equal(MIB) // answered before the server refused it
        await new Promise(r => setTimeout(r, 5))
        await answer()
        const then = next === 'write' ? v.write('/f', fh, mib(2), MIB, MIB, who) : next === 'flush' ? v.flush('/f', fh) : v.fsync('/f', fh, false)
        const e = await then.then(() => undefined, (error: NodeJS.ErrnoException) => error)
        expect(e?.code, next).to.equal('ENOSPC')
      }
    })
  })

  describe('a server that takes several releases in one call, and tells the count of others\' changes', () => {
    /** A fake server of this kind: release_batch 64, others_version in change replies (`others`: bump it for another client's change). */
    function batchConn() {
      const calls: Array<{method: string; req: Record<string, any>}> = []
      let names = 100n
      let fh = 10
      const state = {others: 5000n}
      const conn = {
        generation: 1,
        maxChunk: 1024 * 1024,
        releaseBatch: 64,
        async call(method: string, req: Record<string, any>) {
          calls.push({method, req})
          const others = String(state.others)
          switch (method) {
            case 'Create': return {fh: String(fh++), stat: wireStat, parent: wireStat, names_version: String(++names), others_version: others}
            case 'Mkdir': case 'Unlink': return {parent: wireStat, names_version: String(++names), others_version: others}
            case 'Getattr': return {stat: wireStat}
            default: return {}
          }
        },
        async openDuplex() {
          return undefined
        },
        errno: (e: unknown) => e,
        close() {},
      }
      return {conn, calls, state}
    }

    it('releases go to the server together, at once when a change to the path waits for one', async () => {
      const {conn, calls} = batchConn()
      const v = new RemoteVolume(conn as unknown as Connection)
      await v.mkdir('/d', 0o755, who)
      for (let i = 0; i < 5; i++) await v.release(`/d/f${i}`, await v.create(`/d/f${i}`, 0o644, 0o1, who))
      expect(calls.filter(c => c.method === 'Release'), 'held a moment').to.deep.equal([])
      await new Promise(r => setTimeout(r, 30))
      const releases = calls.filter(c => c.method === 'Release')
      expect(releases.map(c => [Number(c.req.fh), ...c.req.more.map(Number)])).to.deep.equal([[10, 11, 12, 13, 14]])

      await v.release('/d/f5', await v.create('/d/f5', 0o644, 0o1, who))
      await v.unlink('/d/f5', who) // its release is sent first, without waiting for the others to come
      expect(calls.slice(-2).map(c => c.method)).to.deep.equal(['Release', 'Unlink'])
      await v.close()
    })

    it('one release per call to a server that takes one', async () => {
      const {conn, calls} = batchConn()
      conn.releaseBatch = 1
      const v = new RemoteVolume(conn as unknown as Connection)
      for (let i = 0; i < 3; i++) await v.release(`/f${i}`, await v.create(`/f${i}`, 0o644, 0o1, who))
      await new Promise(r => setTimeout(r, 30))
      expect(calls.filter(c => c.method === 'Release').map(c => c.req.more)).to.deep.equal([undefined, undefined, undefined])
      await v.close()
    })

    it('the lookup of a file it made is answered without a call until another client changed anything, or it touched the file', async () => {
      const {conn, calls, state} = batchConn()
      const v = new RemoteVolume(conn as unknown as Connection)
      await v.mkdir('/d', 0o755, who)
      for (const n of ['a', 'b', 'c']) await v.release(`/d/${n}`, await v.create(`/d/${n}`, 0o644, 0o1, who))
      await new Promise(r => setTimeout(r, 30))
      const getattrs = () => calls.filter(c => c.method === 'Getattr').map(c => c.req.path)
      await v.getattr('/d/a') // the attribute cache has none (a change came after a's create)
      await v.unlink('/d/a', who)
      expect(getattrs()).to.deep.equal([])
      await v.getattr('/d/b')
      await v.chmod('/d/b', 0o600, who) // touched: asked from now on
      await v.unlink('/d/a2', who).catch(() => {}) // a change after it: the attribute cache is empty again
      await new Promise(r => setTimeout(r, 10))
      await v.getattr('/d/b')
      expect(getattrs()).to.deep.equal(['/d/b'])
      state.others++ // another client changed something
      await v.release('/d/e', await v.create('/d/e', 0o644, 0o1, who))
      await v.unlink('/d/e', who)
      await v.getattr('/d/c')
      expect(getattrs()).to.deep.equal(['/d/b', '/d/c'])
      await v.close()
    })
  })
})
