import {expect} from 'chai'
import {bdiReadAheadFile} from '../../../src/app/readahead.js'

describe('remote mount: the kernel readahead window file', () => {
  it('finds the mount\'s device in mountinfo (escaped names, the last mount on a path wins), never by stat', () => {
    const info = [
      '22 1 254:0 / / rw,relatime - ext4 /dev/vda1 rw',
      '36 22 0:41 / /mnt/a\\040b rw,nosuid - fuse.paciofs paciofs:x rw',
      '37 22 0:44 / /mnt/c rw - fuse.paciofs old rw',
      '38 37 0:45 / /mnt/c rw - fuse.paciofs new rw',
    ].join('\n')
    expect(bdiReadAheadFile('/mnt/a b', info)).to.equal('/sys/class/bdi/0:41/read_ahead_kb')
    expect(bdiReadAheadFile('/mnt/c', info)).to.equal('/sys/class/bdi/0:45/read_ahead_kb')
    expect(bdiReadAheadFile('/mnt/none', info)).to.equal(undefined)
  })
})
