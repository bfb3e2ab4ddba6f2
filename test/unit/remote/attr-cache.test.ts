import {expect} from 'chai'
import type {BigIntStats} from 'node:fs'
import {AttrCache, CACHED_XATTR} from '../../../src/remote/attr-cache.js'

const st = (size: number) => ({size: BigInt(size)}) as unknown as BigIntStats

describe('remote: attribute cache', () => {
  let now = 0
  const clock = () => now
  beforeEach(() => (now = 1000))

  it('keeps what a change reply carried, for at most its ttl', () => {
    const c = new AttrCache(500, clock)
    const t = c.begin()
    c.end()
    c.fill(t, put => {
      put.stat('/d', st(1))
      put.stat('/d/f', undefined) // missing in the reply: not cached
    })
    expect(c.stat('/d')?.size).to.equal(1n)
    expect(c.stat('/d/f')).to.equal(undefined)
    now += 499
    expect(c.stat('/d')?.size).to.equal(1n)
    now += 1
    expect(c.stat('/d')).to.equal(undefined)
  })

  it('every change empties it; a write keeps the xattr answers', () => {
    const c = new AttrCache(500, clock)
    const t = c.begin()
    c.end()
    c.fill(t, put => put.stat('/f', st(0)))
    c.fill(c.ticket(), put => put.xattr('/f', CACHED_XATTR, {errno: 'ENODATA', message: 'no'}))
    expect(c.stat('/f')?.size).to.equal(0n)
    c.begin('data')
    c.end()
    expect(c.stat('/f')).to.equal(undefined)
    expect(c.xattr('/f', CACHED_XATTR)).to.deep.equal({errno: 'ENODATA', message: 'no'})
    c.begin()
    c.end()
    expect(c.xattr('/f', CACHED_XATTR)).to.equal(undefined)
  })

  it('stores nothing when another change began or is under way', () => {
    const c = new AttrCache(500, clock)
    const a = c.begin()
    const b = c.begin() // a second change overlaps the first
    c.end()
    c.fill(a, put => put.stat('/a', st(1)))
    expect(c.stat('/a')).to.equal(undefined)
    c.end()
    c.fill(b, put => put.stat('/b', st(2)))
    expect(c.stat('/b')?.size).to.equal(2n)
    // a query sent while a change runs is never stored
    c.begin()
    const q = c.ticket()
    c.end()
    c.fill(q, put => put.xattr('/f', CACHED_XATTR, {value: Buffer.from('x')}))
    expect(c.xattr('/f', CACHED_XATTR)).to.equal(undefined)
    // and one whose answer comes after a change is not either
    const q2 = c.ticket()
    c.begin()
    c.end()
    c.fill(q2, put => put.xattr('/f', CACHED_XATTR, {value: Buffer.from('x')}))
    expect(c.xattr('/f', CACHED_XATTR)).to.equal(undefined)
  })

  it('keeps answers of the one xattr the kernel asks before each write only', () => {
    const c = new AttrCache(500, clock)
    c.fill(c.ticket(), put => put.xattr('/f', 'user.x', {value: Buffer.from('v')}))
    expect(c.xattr('/f', 'user.x')).to.equal(undefined)
  })
})
