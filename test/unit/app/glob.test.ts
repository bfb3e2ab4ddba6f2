import {expect} from 'chai'
import {globToRegExp} from '../../../src/app/glob.js'

describe('path globs', () => {
  const cases: Array<[string, string, boolean]> = [
    ['/a/*.pdf', '/a/x.pdf', true],
    ['/a/*.pdf', '/a/b/x.pdf', false],
    ['/a/**', '/a/b/c.pdf', true],
    ['/**/*.pdf', '/x.pdf', true],
    ['/**/*.pdf', '/a/b/x.pdf', true],
    ['/a/?.txt', '/a/b.txt', true],
    ['/a/?.txt', '/a/bc.txt', false],
    ['/a(1)/[x].txt', '/a(1)/[x].txt', true],
  ]
  for (const [glob, p, want] of cases) {
    it(`${glob} ${want ? 'matches' : 'does not match'} ${p}`, () => {
      expect(globToRegExp(glob).test(p)).to.equal(want)
    })
  }
})
