import {expect} from 'chai'
import {mkdir, symlink, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {PathGuard} from '../../../src/server/guard.js'
import {makeTempDir, removeTree} from '../../helpers/tmp.js'

const codeOf = (f: () => unknown) => {
  try {
    f()
    return 'ok'
  } catch (error) {
    return (error as NodeJS.ErrnoException).code
  }
}

describe('server: path guard', () => {
  let dir: string
  let g: PathGuard
  beforeEach(async () => {
    dir = await makeTempDir('guard')
    await mkdir(join(dir, 'd/e'), {recursive: true})
    await writeFile(join(dir, 'd/f'), '')
    await symlink('/etc', join(dir, 'out'))
    await symlink('e', join(dir, 'd/in'))
    g = new PathGuard(dir)
  })
  afterEach(() => removeTree(dir))

  it('accepts volume paths through real directories, new final names included', () => {
    expect(g.check('/d/e')).to.equal('/d/e')
    expect(g.check('/d//e/')).to.equal('/d/e')
    expect(g.check('/d/new')).to.equal('/d/new')
    expect(g.check('/out')).to.equal('/out') // a symlink itself (lstat, readlink, unlink) is fine
    expect(g.check('/.paciofs-history/3/x')).to.equal('/.paciofs-history/3/x') // virtual
  })

  it('refuses malformed paths and symlinks on the way', () => {
    expect(codeOf(() => g.check('../x'))).to.equal('EINVAL')
    expect(codeOf(() => g.check('/d/../../x'))).to.equal('EINVAL')
    expect(codeOf(() => g.check('/d/\0'))).to.equal('EINVAL')
    expect(codeOf(() => g.check(42))).to.equal('EINVAL')
    expect(codeOf(() => g.check('/out/passwd'))).to.equal('ELOOP')
    expect(codeOf(() => g.check('/d/in/x'))).to.equal('ELOOP') // even one pointing inside: the client resolves symlinks
    expect(codeOf(() => g.check('/d/f/x'))).to.equal('ENOTDIR')
    expect(codeOf(() => g.check('/nope/x'))).to.equal('ENOENT')
    expect(codeOf(() => g.check('/out', {final: 'nofollow'}))).to.equal('ELOOP')
    expect(codeOf(() => g.check('/d', {final: 'nofollow'}))).to.equal('ok')
  })

  it('exclusive operations wait for shared ones and keep others out while they run', async () => {
    const order: string[] = []
    let release!: () => void
    const slow = g.run(false, () => new Promise<void>(r => (release = r)).then(() => void order.push('shared-1')))
    const ex = g.run(true, async () => void order.push('exclusive'))
    const later = g.run(false, async () => void order.push('shared-2'))
    await new Promise(r => setTimeout(r, 20))
    expect(order).to.deep.equal([])
    release()
    await Promise.all([slow, ex, later])
    expect(order).to.deep.equal(['shared-1', 'exclusive', 'shared-2'])
  })
})
