// What repair plans for each finding, against an expected tree built from
// records; and that a repair record never changes that tree.
import {expect} from 'chai'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {loadIndex, saveIndex} from '../../../src/audit/cache.js'
import {ExpectedTree} from '../../../src/audit/expected.js'
import type {Divergence} from '../../../src/audit/types.js'
import {planRepair} from '../../../src/repair/plan.js'
import type {FsRecord} from '../../../src/volume/types.js'

const who = {uid: 0, gid: 0, pid: 1, member: 'm'.repeat(64)}
const rec = (r: Partial<FsRecord> & Pick<FsRecord, 'op' | 'path'>): FsRecord => ({v: 1, who, at: 1000, ...r})
const ref = (epoch: number) => ({epoch, txid: `tx${epoch}`, author: 'a'})
const D = 'd'.repeat(64)

function tree(): ExpectedTree {
  const t = new ExpectedTree()
  let e = 1
  const apply = (r: Partial<FsRecord> & Pick<FsRecord, 'op' | 'path'>) => t.apply(rec(r), ref(e++))
  apply({op: 'mkdir', path: '/d', type: 'dir', mode: 0o40755})
  apply({op: 'create', path: '/d/f', type: 'file', mode: 0o100644, size: 0, digest: 'e'.repeat(64)})
  apply({op: 'write', path: '/d/f', size: 3, digest: D, at: 2000})
  apply({op: 'symlink', path: '/l', type: 'symlink', target: 'd/f'})
  apply({op: 'create', path: '/crashed', type: 'file', mode: 0o100644, writing: true})
  apply({op: 'utimens', path: '/l', mtime: '5000000000', atime: 'now'})
  return t
}

const finding = (path: string, kind: Divergence['kind'], extra: Partial<Divergence> = {}): Divergence => ({path, kind, ...extra})

describe('repair plan', () => {
  it('one plan per path, parents first, with the steps each finding needs', () => {
    const t = tree()
    const {plans, left} = planRepair([
      finding('/d/f', 'modified'), finding('/d/f', 'mode'), finding('/l', 'link-target'), finding('/x', 'unexpected'),
      finding('/x/y', 'unexpected'), finding('/d', 'owner'), finding('/d', 'xattr'), finding('/crashed', 'interrupted'),
    ], t)
    expect(left).to.deep.equal([])
    expect(plans.map(p => [p.path, p.steps])).to.deep.equal([
      ['/d', ['owner', 'xattr']], ['/d/f', ['content']], ['/l', ['target']], ['/x', ['aside']],
    ])
    expect(plans.find(p => p.path === '/x')!.covered).to.equal(1) // /x/y goes with /x
    expect(plans.find(p => p.path === '/d/f')!.exp).to.equal(t.entries.get('/d/f'))
  })

  it('a wrong type is moved aside and made anew; what was below it goes with it', () => {
    const {plans} = planRepair([finding('/d/f', 'type'), finding('/d/f/z', 'unexpected'), finding('/d', 'missing')], tree())
    expect(plans.map(p => [p.path, p.steps, p.covered])).to.deep.equal([['/d', ['create'], 0], ['/d/f', ['aside', 'create'], 1]])
  })

  it('leaves everything when the ledger cannot be trusted, and a path whose record was tampered with', () => {
    const broken = planRepair([finding('', 'ledger-broken'), finding('/d/f', 'modified')], tree())
    expect(broken.plans).to.deep.equal([])
    expect(broken.left.map(l => l.path)).to.deep.equal(['', '/d/f'])
    for (const l of broken.left) expect(l.reason).to.match(/ledger cannot be trusted \(ledger-broken\)/)

    const tampered = planRepair([finding('/d', 'record-tampered'), finding('/d/f', 'modified'), finding('/l', 'link-target')], tree())
    expect(tampered.plans.map(p => p.path)).to.deep.equal(['/l'])
    expect(tampered.left.map(l => [l.path, l.reason])).to.deep.equal([
      ['/d', 'the record of /d was tampered with: the ledger no longer says what should be there'],
      ['/d/f', 'the record of /d was tampered with: the ledger no longer says what should be there'],
    ])
  })

  it('leaves content never recorded, with the reason', () => {
    const {plans, history, left} = planRepair([finding('/crashed', 'missing')], tree())
    expect(plans).to.deep.equal([])
    expect(history).to.deep.equal([])
    expect(left.map(l => l.path)).to.deep.equal(['/crashed'])
    expect(left[0].reason).to.match(/never recorded/)
  })

  it('plans to store a version again for each history store finding that names it, unless its record is in doubt', () => {
    const E = 'e'.repeat(64)
    const {plans, history, left} = planRepair([
      finding('/d/f', 'history-missing', {expected: D, found: 'absent', record: ref(3)}),
      finding('/d/f', 'history-tampered', {expected: E, found: 'altered', record: ref(2)}),
      finding('/d/f', 'modified'),
      finding('/l', 'history-missing', {expected: 'not a digest', record: ref(4)}),
      finding('/x', 'record-tampered'), finding('/x/y', 'history-tampered', {expected: D, record: ref(9)}),
    ], tree())
    expect(history).to.deep.equal([
      {path: '/d/f', found: ['history-missing'], digest: D, epoch: 3, txid: 'tx3'},
      {path: '/d/f', found: ['history-tampered'], digest: E, epoch: 2, txid: 'tx2'},
    ])
    expect(plans.map(p => [p.path, p.steps])).to.deep.equal([['/d/f', ['content']]]) // the disk too, separately
    expect(left.map(l => [l.path, l.found])).to.deep.equal([['/x', ['record-tampered']], ['/l', ['history-missing']], ['/x/y', ['history-tampered']]])
    expect(left[1].reason).to.match(/names no recorded version/)
    expect(left[2].reason).to.match(/record of \/x was tampered with/)
  })

  it('a file to restore is linked again to an intact other name of its inode (within the subtree verified), else to one restored first', () => {
    const t = tree()
    t.apply(rec({op: 'link', path: '/d/f', to: '/g'}), ref(50))
    t.apply(rec({op: 'link', path: '/d/f', to: '/h'}), ref(51))
    const intact = planRepair([finding('/d/f', 'modified'), finding('/h', 'missing')], t)
    expect(intact.plans.map(p => [p.path, p.linkTo])).to.deep.equal([['/d/f', '/g'], ['/h', '/g']])
    const outside = planRepair([finding('/d/f', 'modified')], t, '/d') // /g was not looked at
    expect(outside.plans.map(p => p.linkTo)).to.deep.equal([undefined])
    const all = planRepair([finding('/d/f', 'modified'), finding('/g', 'modified'), finding('/h', 'modified')], t)
    expect(all.plans.map(p => [p.path, p.linkTo])).to.deep.equal([['/d/f', undefined], ['/g', '/d/f'], ['/h', '/d/f']])
  })

  it('a --path root that is gone (reported unreadable: ENOENT) is missing', () => {
    const {plans} = planRepair([finding('/d', 'modified', {expected: 'readable', found: 'ENOENT'})], tree())
    expect(plans.map(p => p.steps)).to.deep.equal([['create']])
  })
})

describe('the expected tree and repair records', () => {
  it('a repair record changes nothing, not even which record an entry was last set by', () => {
    const t = tree()
    const before = JSON.stringify([...t.entries].map(([p, n]) => [p, {...n, xattrs: n.xattrs && [...n.xattrs]}]))
    t.apply(rec({op: 'repair', path: '/d/f', type: 'file', size: 4, digest: 'f'.repeat(64), repair: {found: ['modified']}}), ref(99))
    t.apply(rec({op: 'repair', path: '/new', type: 'file', repair: {found: ['missing']}}), ref(100))
    expect(JSON.stringify([...t.entries].map(([p, n]) => [p, {...n, xattrs: n.xattrs && [...n.xattrs]}]))).to.equal(before)
  })

  it('keeps the modification time to restore: the content record\'s time, or the last utimens; the verified index keeps it too', () => {
    const t = tree()
    expect(t.entries.get('/d/f')!.mtime).to.equal('2000000000')
    expect(t.entries.get('/l')!.mtime).to.equal('5000000000')
    const dir = mkdtempSync(join(tmpdir(), 'repair-plan-'))
    try {
      const checkpoint = {ledgerId: 'vol', epoch: 6, headHash: 'a'.repeat(64), time: 1, producer: 'p', signature: 's'}
      saveIndex(dir, {checkpoint, checker: {} as never, maxJseq: 6, anchoredRows: 6, tree: t})
      const back = loadIndex(dir, 'vol')
      expect(back?.tree.entries.get('/d/f')!.mtime).to.equal('2000000000')
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })
})
