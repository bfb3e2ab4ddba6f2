import {expect} from 'chai'
import {PathError, PathResolver, isStatePath, normalize} from '../../../src/volume/paths.js'

describe('volume paths', () => {
  const r = new PathResolver('/srv/vol')

  it('normalizes kernel paths', () => {
    expect(normalize('/')).to.equal('/')
    expect(normalize('/a//b/')).to.equal('/a/b')
  })

  for (const bad of ['', 'a/b', '/a/../b', '/./a', '/a\0b', '/' + 'x'.repeat(256)]) {
    it(`refuses ${JSON.stringify(bad).slice(0, 30)}`, () => {
      expect(() => normalize(bad)).to.throw(PathError)
    })
  }

  it('maps into the backing directory and never out of it', () => {
    expect(r.resolve('/')).to.equal('/srv/vol')
    expect(r.resolve('/a/b')).to.equal('/srv/vol/a/b')
    expect(() => r.resolve('/../etc/passwd')).to.throw(PathError)
  })

  it('hides the state directory', () => {
    expect(isStatePath('/.paciofs')).to.equal(true)
    expect(isStatePath('/.paciofs/ledger.db')).to.equal(true)
    expect(isStatePath('/.paciofsx')).to.equal(false)
    expect(isStatePath('/a/.paciofs')).to.equal(false)
    expect(() => r.resolve('/.paciofs/ledger.db')).to.throw(PathError).with.property('code', 'ENOENT')
    expect(() => r.resolveNew('/.paciofs')).to.throw(PathError).with.property('code', 'EACCES')
  })
})
