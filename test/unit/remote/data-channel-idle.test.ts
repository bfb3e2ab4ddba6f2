// The client's data channel against a minimal server speaking its frames: the silence timer fails a
// channel whose server stops answering, and leaves an idle one (nothing waiting) alone.
import {expect} from 'chai'
import {X509Certificate} from 'node:crypto'
import type {AddressInfo} from 'node:net'
import tls from 'node:tls'
import {generateIdentity} from '../../../src/crypto/sign.js'
import {certFingerprint} from '../../../src/remote/auth.js'
import {DataChannel} from '../../../src/remote/data-channel.js'
import {FrameAssembler} from '../../../src/remote/frame-assembler.js'
import {frame, MAX_FRAME, T} from '../../../src/remote/frames.js'
import {loadOrCreateServerTls} from '../../../src/server/tls.js'
import {makeTempDir, removeTree} from '../../helpers/tmp.js'

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

describe('remote: the data channel\'s silence timer', function () {
  this.timeout(30_000)
  let dir: string
  let server: tls.Server
  let open: (silenceMs: number) => Promise<DataChannel>
  /** whether the server answers reads */
  let answering = true
  before(async () => {
    dir = await makeTempDir('paciofs-dc-idle-')
    const {key, cert} = await loadOrCreateServerTls(dir)
    server = tls.createServer({key, cert}, socket => {
      const a = new FrameAssembler(MAX_FRAME)
      socket.on('error', () => {})
      socket.on('data', (chunk: Buffer) => {
        for (const f of a.push(chunk)) {
          if (f.type === T.AUTH) socket.write(frame(T.OK, f.id))
          else if (f.type === T.READ && answering) socket.write(Buffer.concat([frame(T.DATA, f.id, Buffer.from('hello')), frame(T.END, f.id)]))
        }
      })
      socket.write(frame(T.NONCE, 0, Buffer.alloc(32, 7)))
    })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    const fingerprint = certFingerprint(Buffer.from(new X509Certificate(cert).raw)).toString('hex')
    open = silenceMs => DataChannel.open({host: '127.0.0.1', port: (server.address() as AddressInfo).port, cert: cert.toString(), fingerprint, token: 't', volume: 'v', identity: generateIdentity(), generation: 1, silenceMs})
  })
  after(async () => {
    server.close()
    await removeTree(dir)
  })

  const read = (ch: DataChannel) => new Promise<string>((resolve, reject) => {
    const parts: Buffer[] = []
    const s = ch.readStream(1, 0, 100)
    s.on('data', (r: {data?: Buffer}) => parts.push(r.data!))
    s.on('end', () => resolve(Buffer.concat(parts).toString()))
    s.on('error', reject)
  })

  it('an idle channel stays usable past the silence limit; one whose server stops answering fails', async () => {
    const ch = await open(150)
    try {
      expect(await read(ch)).to.equal('hello')
      await sleep(400)
      expect(ch.usable, 'nothing was waiting').to.equal(true)
      expect(await read(ch)).to.equal('hello')
      answering = false
      const err = await read(ch).then(() => undefined, (e: NodeJS.ErrnoException) => e)
      expect(err?.code).to.equal('EIO')
      expect(ch.usable).to.equal(false)
    } finally {
      ch.close()
    }
  })
})
