// Frames received over a real TLS connection on loopback, decrypted straight into the assembler's buffers.
import {expect} from 'chai'
import {createHash} from 'node:crypto'
import type {AddressInfo} from 'node:net'
import tls from 'node:tls'
import {loadOrCreateServerTls} from '../../../src/server/tls.js'
import {FrameAssembler} from '../../../src/remote/frame-assembler.js'
import {frame, FRAME_HEADER, MAX_FRAME, T, type Frame} from '../../../src/remote/frames.js'
import {onreadOption, receiveInto, type ReceiveMode} from '../../../src/remote/receive.js'
import {makeTempDir, removeTree} from '../../helpers/tmp.js'

const body = (n: number, seed: number) => {
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) b[i] = (i * 13 + seed) % 251
  return b
}

/** 40 frames of mixed sizes: 1 MiB writes, small calls, empty bodies. */
function traffic(): Buffer[] {
  const out: Buffer[] = []
  for (let i = 0; i < 40; i++) {
    const size = i % 4 === 0 ? 1_048_600 : i % 4 === 1 ? 100 : i % 4 === 2 ? 0 : 20_000 + i
    out.push(frame(i % 4 === 0 ? T.WRITE : T.CALL, i + 1, body(size, i)))
  }

  return out
}

const digestOf = (f: {type: number; id: number; body: Buffer}) => `${f.type}/${f.id}/${f.body.length}/${createHash('sha256').update(f.body).digest('hex').slice(0, 16)}`

describe('remote: receiving frames into the assembler over TLS', function () {
  this.timeout(60_000)
  let dir: string
  let key: Buffer
  let cert: Buffer
  before(async () => {
    dir = await makeTempDir('paciofs-receive-')
    ;({key, cert} = await loadOrCreateServerTls(dir))
  })
  after(() => removeTree(dir))

  /** A server that receives with receiveInto (pausing for a while after every 5th frame); the client's frames as received. */
  async function serverReceives(send: Buffer[], env?: string): Promise<{mode: ReceiveMode; got: string[]}> {
    const before = process.env.PACIOFS_DIRECT_RECEIVE
    if (env !== undefined) process.env.PACIOFS_DIRECT_RECEIVE = env
    const got: string[] = []
    let mode: ReceiveMode | undefined
    const done = new Promise<void>((resolve, reject) => {
      const server = tls.createServer({key, cert}, socket => {
        const a = new FrameAssembler(MAX_FRAME)
        mode = receiveInto(socket, a, {
          onError: reject,
          onFrames(frames: Frame[]) {
            for (const f of frames) {
              got.push(digestOf(f))
              if (got.length % 5 === 0) {
                socket.pause() // back-pressure as the data server applies it
                setTimeout(() => socket.resume(), 20)
              }
            }

            if (got.length === send.length) {
              socket.end()
              server.close()
              resolve()
            }
          },
        })
        socket.write(frame(T.NONCE, 0, Buffer.alloc(32))) // the server speaks first
      })
      server.listen(0, '127.0.0.1', () => {
        const c = tls.connect({host: '127.0.0.1', port: (server.address() as AddressInfo).port, rejectUnauthorized: false})
        c.on('error', () => {})
        c.once('data', () => {
          for (const f of send) c.write(f)
        })
      })
    })
    try {
      await done
    } finally {
      if (env !== undefined) process.env.PACIOFS_DIRECT_RECEIVE = before
    }

    return {mode: mode!, got}
  }

  it('a server socket reads into the frames\' buffers (Node 20) and gets every frame intact, with pauses', async () => {
    const send = traffic()
    const {mode, got} = await serverReceives(send)
    if (process.versions.node.startsWith('20.')) expect(mode).to.equal('direct')
    expect(got).to.deep.equal(send.map(f => digestOf({type: f[4], id: f.readUInt32BE(5), body: f.subarray(FRAME_HEADER)})))
  })

  it('with PACIOFS_DIRECT_RECEIVE=0 it reads with data events, and gets the same frames', async () => {
    const send = traffic().slice(0, 12)
    const {mode, got} = await serverReceives(send, '0')
    expect(mode).to.equal('data')
    expect(got).to.deep.equal(send.map(f => digestOf({type: f[4], id: f.readUInt32BE(5), body: f.subarray(FRAME_HEADER)})))
  })

  it('a client socket (tls.connect\'s onread) gets streamed DATA pieces that add up to each frame', async () => {
    const send = [frame(T.NONCE, 0, body(32, 1)), frame(T.DATA, 5, body(1_048_576, 2)), frame(T.DATA, 5, body(70_000, 3)), frame(T.END, 5), frame(T.OK, 6, body(4, 4))]
    const server = tls.createServer({key, cert}, socket => {
      for (const f of send) socket.write(f)
      socket.end()
    })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    try {
      const pieces: Frame[] = []
      await new Promise<void>((resolve, reject) => {
        const a = new FrameAssembler(MAX_FRAME, undefined, t => t === T.DATA)
        const c = tls.connect({host: '127.0.0.1', port: (server.address() as AddressInfo).port, rejectUnauthorized: false, onread: onreadOption(a, {onError: reject, onFrames: f => pieces.push(...f)})} as tls.ConnectionOptions)
        c.on('error', reject)
        c.on('end', () => resolve())
        c.resume()
      })
      const data = pieces.filter(p => p.type === T.DATA)
      expect(data.length).to.be.greaterThan(2) // in pieces, not whole
      const first = Buffer.concat(data.slice(0, data.findIndex(p => !p.more) + 1).map(p => p.body))
      expect(first.equals(send[1].subarray(FRAME_HEADER))).to.equal(true)
      const second = Buffer.concat(data.slice(data.findIndex(p => !p.more) + 1).map(p => p.body))
      expect(second.equals(send[2].subarray(FRAME_HEADER))).to.equal(true)
      expect(pieces.filter(p => p.type !== T.DATA).map(p => [p.type, p.id])).to.deep.equal([[T.NONCE, 0], [T.END, 5], [T.OK, 6]])
    } finally {
      server.close()
    }
  })
})
