import {expect} from 'chai'
import {NameCache} from '../../../src/remote/name-cache.js'
import {NamespaceClock} from '../../../src/server/namespace-clock.js'
import {OthersCount} from '../../../src/server/others-count.js'

describe('remote: name cache', () => {
  let now = 0
  const clock = () => now
  beforeEach(() => (now = 1000))

  /** One change of this client's, answered with `version`. */
  const change = (c: NameCache, version: bigint | undefined, apply: Parameters<NameCache['end']>[1]) => {
    c.begin()
    c.end(version, apply)
  }

  it('a directory this client made is known empty; its own changes in a row keep it exact', () => {
    const c = new NameCache(500, clock)
    expect(c.absent('/d/a')).to.equal(false) // nothing known yet
    change(c, 10n, n => n.added('/d', true))
    expect(c.absent('/d/a')).to.equal(true)
    expect(c.absent('/e/a')).to.equal(false) // a directory it did not make: unknown
    change(c, 11n, n => n.added('/d/a'))
    expect(c.absent('/d/a')).to.equal(false)
    expect(c.absent('/d/b')).to.equal(true)
    change(c, 12n, n => n.removed('/d/a'))
    expect(c.absent('/d/a')).to.equal(true)
  })

  it('a gap in the versions (another client changed a name) forgets every directory', () => {
    const c = new NameCache(500, clock)
    change(c, 10n, n => n.added('/d', true))
    change(c, 12n, n => n.added('/d/a'))
    expect(c.absent('/d/b')).to.equal(false)
    expect(c.known).to.equal(0)
    // a directory made by the change that shows the gap is still known: it ran alone and was empty
    change(c, 14n, n => n.added('/e', true))
    expect(c.absent('/e/x')).to.equal(true)
  })

  it('a change without a version (ran beside another, failed, link, rename, older server) forgets everything', () => {
    for (const version of [undefined, 0n]) {
      const c = new NameCache(500, clock)
      change(c, 10n, n => n.added('/d', true))
      change(c, version, n => n.added('/d/a'))
      expect(c.absent('/d/b')).to.equal(false)
      change(c, 11n, n => n.added('/d/b')) // follows 10, but what came between is not known
      expect(c.absent('/d/c')).to.equal(false)
    }

    const c = new NameCache(500, clock)
    change(c, 10n, n => n.added('/d', true))
    change(c, 11n, undefined) // a rename: its effect is not applied here
    expect(c.absent('/d/a')).to.equal(false)
  })

  it('answers only within its ttl of the last version seen, and never while a change is under way', () => {
    const c = new NameCache(500, clock)
    change(c, 10n, n => n.added('/d', true))
    c.begin()
    expect(c.absent('/d/a')).to.equal(false)
    c.end(11n, n => n.added('/d/x'))
    now += 499
    expect(c.absent('/d/a')).to.equal(true)
    now += 1
    expect(c.absent('/d/a')).to.equal(false) // another client may have made it meanwhile
  })

  it('removing a directory forgets what was known below it', () => {
    const c = new NameCache(500, clock)
    change(c, 10n, n => n.added('/d', true))
    change(c, 11n, n => n.added('/d/e', true))
    expect(c.absent('/d/e/f')).to.equal(true)
    change(c, 12n, n => n.removed('/d/e'))
    expect(c.absent('/d/e/f')).to.equal(false)
    expect(c.absent('/d/e')).to.equal(true)
  })

  describe('attributes of entries this client made', () => {
    const st = (size: number) => ({size: BigInt(size)}) as unknown as import('node:fs').BigIntStats
    const made = (c: NameCache, version: bigint, path: string, others: bigint | undefined, size = 0) => {
      c.begin()
      c.end(version, n => n.added(path, false, st(size)), others)
    }

    it('are kept while the count of others\' changes stays the same, and answer within the ttl', () => {
      const c = new NameCache(500, clock)
      made(c, 10n, '/a', 77n)
      made(c, 11n, '/b', 77n)
      expect(Number(c.stat('/a')?.size)).to.equal(0)
      expect(c.knownStats).to.equal(2)
      now += 499
      expect(c.stat('/b')).to.not.equal(undefined)
      now += 1
      expect(c.stat('/b'), 'past the ttl of the last reply').to.equal(undefined)
      c.begin()
      c.end(12n, n => n.removed('/a'), 77n)
      expect(c.stat('/a')).to.equal(undefined)
      expect(c.stat('/b')).to.not.equal(undefined)
    })

    it('are all forgotten when others changed anything (another count, or none), and never kept from a reply without one', () => {
      for (const others of [78n, 0n, undefined]) {
        const c = new NameCache(500, clock)
        made(c, 10n, '/a', 77n)
        made(c, 11n, '/b', others)
        expect(c.stat('/a'), `count ${others}`).to.equal(undefined)
        expect(c.stat('/b') !== undefined, `count ${others}`).to.equal(others === 78n) // a new count is a new start
      }
    })

    it('are forgotten on a gap in the versions, a change without one, and for the entry this client touches', () => {
      const c = new NameCache(500, clock)
      made(c, 10n, '/a', 5n)
      made(c, 12n, '/b', 5n)
      expect(c.stat('/a')).to.equal(undefined)
      made(c, 13n, '/c', 5n)
      c.touched('/c')
      expect(c.stat('/c')).to.equal(undefined)
      expect(c.stat('/b')).to.not.equal(undefined)
      c.begin()
      expect(c.stat('/b'), 'while a change is under way').to.equal(undefined)
      c.end(undefined)
      expect(c.stat('/b')).to.equal(undefined)
    })

    it('are not kept for a directory (its attributes change with the names made in it)', () => {
      const c = new NameCache(500, clock)
      c.begin()
      c.end(10n, n => n.added('/d', true, st(4096)), 5n)
      expect(c.stat('/d')).to.equal(undefined)
    })

    it('the server\'s count: a session sees the same number until another session\'s change begins, and none while it runs', () => {
      const count = new OthersCount()
      const a = {}
      const b = {}
      const first = count.others(a)!
      count.begin(a)
      expect(count.others(a), 'its own change does not count').to.equal(first)
      count.end(a)
      expect(count.others(a)).to.equal(first)
      const seenByB = count.others(b)!
      count.begin(b)
      expect(count.others(a), 'another session\'s change under way').to.equal(undefined)
      expect(count.others(b)).to.equal(seenByB)
      count.end(b)
      expect(count.others(a)! > first).to.equal(true)
      expect(new OthersCount().others(a), 'a restarted server does not continue the numbers').to.not.equal(count.others(a))
    })
  })
})

describe('server: namespace clock', () => {
  it('a change that ran alone gets the next version; changes that overlap get none', async () => {
    const clock = new NamespaceClock()
    const a = await clock.change(async () => 'a')
    const b = await clock.change(async () => 'b')
    expect(a.value).to.equal('a')
    expect(b.version).to.equal(a.version! + 1n)

    let release!: () => void
    const held = new Promise<void>(r => (release = r))
    const first = clock.change(() => held)
    const second = clock.change(async () => {})
    release()
    const [x, y] = await Promise.all([first, second])
    expect(x.version).to.equal(undefined)
    expect(y.version).to.equal(undefined)
    const c = await clock.change(async () => {})
    expect(c.version).to.equal(b.version! + 3n) // the overlapping ones were counted
  })

  it('a failed change still moves the version (a client cannot tell what it did)', async () => {
    const clock = new NamespaceClock()
    const a = await clock.change(async () => {})
    await clock.change(async () => {
      throw new Error('EEXIST')
    }).catch(() => {})
    const b = await clock.change(async () => {})
    expect(b.version).to.equal(a.version! + 2n)
  })

  it('versions of two clocks (a restarted server) do not continue each other', async () => {
    const a = await new NamespaceClock().change(async () => {})
    const b = await new NamespaceClock().change(async () => {})
    expect(b.version).to.not.equal(a.version! + 1n)
  })
})
