import {expect} from 'chai'
import {encodeDataInPlace, encodeWriteInPlace, HEADROOM, serviceDefinition} from '../../../src/remote/wire.js'

describe('remote: hand-encoded data messages are ordinary protobuf', () => {
  const def = serviceDefinition()

  it('a WriteRequest encoded in place decodes to the same fields', () => {
    for (const [len, fh, offset, caller] of [
      [0, 0, 0, {uid: 0, gid: 0, pid: 0}],
      [5, 17, 1_048_576, {uid: 1000, gid: 100, pid: 4242}],
      [1 << 20, 2 ** 31 - 1, 2 ** 52 + 3, {uid: 0xFFFF_FFFE, gid: 65534, pid: 1}],
    ] as const) {
      const buf = Buffer.alloc(HEADROOM + len)
      for (let i = 0; i < len; i++) buf[HEADROOM + i] = i % 251
      const msg = encodeWriteInPlace(buf, len, fh, offset, caller)
      const req = def.Write.requestDeserialize(msg) as {fh: string; offset: string; data: Buffer; caller: typeof caller}
      expect(Number(req.fh)).to.equal(fh)
      expect(Number(req.offset)).to.equal(offset)
      expect(req.caller).to.deep.equal(caller)
      expect(req.data.equals(buf.subarray(HEADROOM, HEADROOM + len))).to.equal(true)
      // and the ordinary serializer's bytes decode the same
      expect(def.Write.requestDeserialize(def.Write.requestSerialize(req))).to.deep.equal(req)
    }
  })

  it('a DataReply encoded in place decodes to the bytes read', () => {
    for (const n of [0, 1, 127, 128, 65_536, 1 << 20]) {
      const buf = Buffer.alloc(HEADROOM + n, 7)
      const reply = def.Read.responseDeserialize(encodeDataInPlace(buf, n)) as {data: Buffer; error: unknown}
      expect(reply.data.length).to.equal(n)
      expect(reply.error).to.equal(null)
    }
  })
})
