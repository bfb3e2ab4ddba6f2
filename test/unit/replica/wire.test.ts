// A ContentPiece framed in place (src/replica/wire.ts framedContent): the same bytes as protobuf's
// encoding, decoded by the client's deserializer to the data, sent as it is by the service's serializer.
import {expect} from 'chai'
import {randomBytes} from 'node:crypto'
import type * as grpc from '@grpc/grpc-js'
import {CONTENT_HEADER, framedContent, replicaDefinition} from '../../../src/replica/wire.js'

describe('replica wire: framed content pieces', () => {
  const content = replicaDefinition().Content as grpc.MethodDefinition<{data: Buffer}, {data: Buffer}>

  it('frames data in the room before it, exactly as protobuf encodes {data}, for lengths around each varint width', () => {
    for (const n of [1, 127, 128, 16_383, 16_384, 262_144, 2_097_151, 2_097_152, 3_000_001]) {
      const data = randomBytes(n)
      const buf = Buffer.allocUnsafe(CONTENT_HEADER + n)
      data.copy(buf, CONTENT_HEADER)
      const inPlace = buf.subarray(CONTENT_HEADER)
      const framed = framedContent(inPlace)
      expect(framed.buffer, 'no copy').to.equal(buf.buffer)
      expect(framed.equals(content.responseSerialize({data})), `${n} bytes`).to.equal(true)
      expect(content.responseDeserialize(framed).data.equals(data)).to.equal(true)
      expect(content.responseSerialize(framed as never), 'a framed piece is sent as it is').to.equal(framed)
    }
  })

  it('refuses data without room before it for the header', () => {
    const buf = Buffer.allocUnsafeSlow(300)
    expect(() => framedContent(buf.subarray(1))).to.throw(/bytes are needed before the data/)
    expect(framedContent(buf.subarray(2, 12)).length, 'a short piece needs 2').to.equal(12)
  })
})
