import {expect} from 'chai'
import {randomBytes} from 'node:crypto'
import fs from 'node:fs'
import {join} from 'node:path'
import {CHUNK_SIZE, HistoryStore} from '../../../src/history/store.js'
import {openQuiet, openQuietSync} from '../../../src/quiet-open.js'
import {digestFd} from '../../../src/volume/content.js'
import {READ_LSTAT, READ_META, sys} from '../../../src/volume/sys.js'
import {makeTempDir, removeTree} from '../../helpers/tmp.js'

// an access time long past: under relatime (and strictatime) any read moves it to now
const OLD = new Date('2002-03-04T05:06:07Z')

/**
 * The volume's own reads of a user's file (a digest, a version's capture,
 * verify's scan, a running digest's read-back) leave its access time where
 * the user left it: only the user's reads move it.
 */
describe('the volume\'s own reads leave access times alone', () => {
  let dir: string
  let file: string
  const data = randomBytes(2 * CHUNK_SIZE + 77)

  const atime = () => fs.statSync(file, {bigint: true}).atimeNs
  const aged = () => {
    fs.utimesSync(file, OLD, fs.statSync(file).mtime)
    return atime()
  }

  beforeEach(async function () {
    dir = await makeTempDir('quiet-reads')
    file = join(dir, 'f')
    fs.writeFileSync(file, data)
    // the control: a plain read moves an old access time here, or the checks below could not fail
    const before = aged()
    fs.readFileSync(file)
    if (atime() === before) this.skip() // a noatime file system: nothing to tell apart
  })
  afterEach(() => removeTree(dir))

  it('openQuietSync and openQuiet', async () => {
    const before = aged()
    const fd = openQuietSync(file, fs.constants.O_RDONLY)
    try {
      fs.readSync(fd, Buffer.alloc(4096), 0, 4096, 0)
    } finally {
      fs.closeSync(fd)
    }

    const fh = await openQuiet(file, fs.constants.O_RDONLY)
    try {
      await fh.read(Buffer.alloc(4096), 0, 4096, 0)
    } finally {
      await fh.close()
    }

    expect(atime()).to.equal(before)
  })

  it('a digest and a history capture of the file, small and large', async () => {
    const small = join(dir, 'small')
    fs.writeFileSync(small, 'a document')
    fs.utimesSync(small, OLD, OLD)
    const smallBefore = fs.statSync(small, {bigint: true}).atimeNs
    const before = aged()
    const store = new HistoryStore(join(dir, 'history'), {create: true})
    const fd = fs.openSync(file, fs.constants.O_WRONLY) // a writer's descriptor: the reads re-open the inode
    const sfd = fs.openSync(small, fs.constants.O_WRONLY)
    try {
      expect((await digestFd(fd)).size).to.equal(data.length)
      expect((await store.capture(fd)).size).to.equal(data.length)
      expect((await store.capture(sfd)).size).to.equal(10)
    } finally {
      fs.closeSync(fd)
      fs.closeSync(sfd)
    }

    expect(atime()).to.equal(before)
    expect(fs.statSync(small, {bigint: true}).atimeNs).to.equal(smallBefore)
  })

  it('verify\'s batch read and the thread pool\'s read-backs (native)', async () => {
    fs.truncateSync(file, 1024) // small enough for one readFiles batch, whole 64-byte blocks for a chain step
    const before = aged()
    const out = new Float64Array(READ_META)
    expect(sys.readFiles([file], 0, 1, READ_LSTAT, null, Buffer.alloc(1 << 16), out)).to.equal(1)
    expect(out[7]).to.equal(1024)
    expect(await sys.hashFileJob(file, 0, 1024, null, 0, Buffer.alloc(32), Buffer.alloc(1024))).to.equal(1024)
    expect(await sys.sha256Job(Buffer.alloc(1025), 1, null, 0, Buffer.alloc(64), file, 1024)).to.equal(1024)
    expect(atime()).to.equal(before)
  })
})
