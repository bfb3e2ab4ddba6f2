import {expect} from 'chai'
import {HistoryView} from '../../../src/history/view.js'
import type {HistoryStore} from '../../../src/history/store.js'
import type {Volume} from '../../../src/volume/types.js'

/** A volume that says which of its reads ran. */
function fakeVolume(offThread: boolean): {volume: Volume; calls: string[]} {
  const calls: string[] = []
  const volume = {
    async read(_p: string, _fh: number, buf: Buffer) {
      calls.push('read')
      return buf.write('on the loop')
    },
    ...(offThread ? {async readOffThread(_p: string, _fh: number, buf: Buffer) {
      calls.push('readOffThread')
      return buf.write('off the loop')
    }} : {}),
  } as unknown as Volume
  return {volume, calls}
}

describe('history view: reads of the live volume\'s handles', () => {
  it('readOffThread of a live handle goes to the volume\'s readOffThread (the data server\'s reads), or to its read where it has none', async () => {
    const buf = Buffer.alloc(32)
    const a = fakeVolume(true)
    const view = new HistoryView(a.volume, undefined as unknown as HistoryStore, async () => { throw new Error('no timeline here') })
    expect(await view.readOffThread('/f', 3, buf, 32, 0)).to.equal(12)
    expect(buf.subarray(0, 12).toString()).to.equal('off the loop')
    expect(await view.read('/f', 3, buf, 32, 0)).to.equal(11)
    expect(a.calls).to.deep.equal(['readOffThread', 'read'])

    const b = fakeVolume(false)
    const plain = new HistoryView(b.volume, undefined as unknown as HistoryStore, async () => { throw new Error('no timeline here') })
    expect(await plain.readOffThread('/f', 3, buf, 32, 0)).to.equal(11)
    expect(b.calls).to.deep.equal(['read'])
  })
})
