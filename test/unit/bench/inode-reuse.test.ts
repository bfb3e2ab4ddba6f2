// bench/fs/inode-reuse.ts: which file systems hold freed inodes back, read from a sysfs tree.
import {expect} from 'chai'
import {mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {EXT4_REUSE_DELAY_MS, blockDeviceOf, inodeReuseDelayMs} from '../../../bench/fs/inode-reuse.js'

describe('bench inode reuse delay', () => {
  let sysfs: string
  const dir = tmpdir()
  const dev = blockDeviceOf(dir)

  beforeEach(() => {
    sysfs = mkdtempSync(join(tmpdir(), 'ext4-sysfs-'))
  })

  afterEach(() => rmSync(sysfs, {recursive: true, force: true}))

  it('names the block device of a directory on a disk, and none for a virtual file system', function () {
    if (dev === undefined) this.skip() // the temp dir is on tmpfs or overlay here
    expect(dev).to.match(/^[\w!.-]+$/)
    expect(statSync(`/sys/class/block/${dev}`).isDirectory()).to.equal(true)
    expect(blockDeviceOf('/proc')).to.equal(undefined)
  })

  it('waits a minute on ext4 without a journal, not at all with one or elsewhere', function () {
    if (dev === undefined) this.skip()
    mkdirSync(join(sysfs, dev))
    writeFileSync(join(sysfs, dev, 'journal_task'), '<none>\n')
    expect(inodeReuseDelayMs(dir, sysfs)).to.equal(EXT4_REUSE_DELAY_MS)
    expect(EXT4_REUSE_DELAY_MS).to.be.greaterThan(60_000)
    writeFileSync(join(sysfs, dev, 'journal_task'), 'jbd2/vda-8 (412)\n')
    expect(inodeReuseDelayMs(dir, sysfs)).to.equal(0)
    rmSync(join(sysfs, dev), {recursive: true})
    expect(inodeReuseDelayMs(dir, sysfs)).to.equal(0) // not ext4
    expect(inodeReuseDelayMs('/proc', sysfs)).to.equal(0)
  })
})
