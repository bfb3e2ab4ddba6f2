// The ServerSet state machine and the join statement: pure, no I/O.
import {expect} from 'chai'
import {generateIdentity} from '../../../src/crypto/sign.js'
import {ServerSet} from '../../../src/replica/servers.js'
import {signJoin} from '../../../src/replica/statements.js'
import type {FsRecord} from '../../../src/volume/types.js'

const VOL = '7c0e1f2a-0000-4000-8000-000000000001'
const rec = (op: FsRecord['op'], member: string, by: string, extra: Partial<FsRecord> = {}): FsRecord =>
  ({v: 1, op, path: '/', member, who: {uid: 0, gid: 0, pid: 1, member: by}, at: 1, ...extra})

function join(id = generateIdentity(), volumeId = VOL) {
  const {statement, proof} = signJoin(id, {volumeId, address: '127.0.0.1:9', fingerprint: 'ab'.repeat(32), at: 1234})
  return {id, r: rec('server-join', id.pid, id.pid, {address: statement.address, fingerprint: statement.fingerprint, proof, signedAt: statement.at})}
}

describe('replica ServerSet', () => {
  const primary = generateIdentity().pid

  it('a signed JOIN is pending until one accepted server votes', () => {
    const set = new ServerSet(primary, VOL)
    const {id, r} = join()
    set.apply(r)
    expect(set.get(id.pid)?.state).to.equal('pending')
    expect(set.isAccepted(id.pid)).to.equal(false)
    set.apply(rec('server-accept', id.pid, primary))
    expect(set.get(id.pid)?.state).to.equal('accepted')
    expect(set.get(id.pid)?.address).to.equal('127.0.0.1:9')
    expect(set.isAccepted(primary)).to.equal(true)
  })

  it('a JOIN whose signature does not verify (forged, or for another volume) counts for nothing', () => {
    const set = new ServerSet(primary, VOL)
    const {id, r} = join()
    set.apply({...r, address: '10.0.0.1:1'}) // altered after signing
    expect(set.get(id.pid)).to.equal(undefined)
    set.apply(join(id, 'another-volume').r)
    expect(set.get(id.pid)).to.equal(undefined)
    set.apply({...r, proof: undefined})
    expect(set.get(id.pid)).to.equal(undefined)
  })

  it('with votes = 2 it takes two distinct voters to accept and to kick', () => {
    const set = new ServerSet(primary, VOL, 2)
    const a = join()
    const b = join()
    set.apply(a.r)
    set.apply(rec('server-accept', a.id.pid, primary))
    set.apply(rec('server-accept', a.id.pid, primary)) // the same voter twice
    expect(set.get(a.id.pid)?.state).to.equal('pending')
    set.apply(rec('server-accept', a.id.pid, 'f'.repeat(64)))
    expect(set.get(a.id.pid)?.state).to.equal('accepted')
    set.apply(b.r)
    set.apply(rec('server-kick', b.id.pid, primary, {reason: 'lied'}))
    expect(set.get(b.id.pid)?.state).to.equal('pending')
    set.apply(rec('server-kick', b.id.pid, a.id.pid, {reason: 'lied'}))
    expect(set.get(b.id.pid)).to.include({state: 'kicked', reason: 'lied'})
  })

  it('only the server itself can LEAVE; a departed or kicked server may JOIN again', () => {
    const set = new ServerSet(primary, VOL)
    const {id, r} = join()
    set.apply(r)
    set.apply(rec('server-accept', id.pid, primary))
    set.apply(rec('server-leave', id.pid, primary))
    expect(set.get(id.pid)?.state).to.equal('accepted')
    set.apply(rec('server-leave', id.pid, id.pid))
    expect(set.get(id.pid)?.state).to.equal('left')
    set.apply(rec('server-accept', id.pid, primary)) // not pending: no effect
    expect(set.get(id.pid)?.state).to.equal('left')
    set.apply(r)
    expect(set.get(id.pid)?.state).to.equal('pending')
    expect(set.accepted()).to.deep.equal([])
  })

  it('ignores records that are not about servers', () => {
    const set = new ServerSet(primary, VOL)
    expect(set.apply(rec('member-add', 'a'.repeat(64), primary))).to.equal(false)
    expect(set.list()).to.deep.equal([])
  })
})
