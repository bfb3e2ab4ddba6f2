// A volume on a MultiChain ledger, end to end through the CLI: mount with
// --chain on the fake node (over real HTTP, from the mount's own process),
// write, unmount; log shows block heights and MultiChain txids; verify is
// clean; a changed file and a rewritten chain are reported.
import {expect} from 'chai'
import fs from 'node:fs'
import {join} from 'node:path'
import {isFuseMounted} from '../../helpers/bindfs.js'
import {mountPacio, paciofs, scratch} from '../../helpers/paciofs.js'
import {FakeMultiChainNode} from '../../fakes/multichain/node.js'

describe('paciofs on a MultiChain ledger (fake node)', function () {
  this.timeout(120_000)
  let area: Awaited<ReturnType<typeof scratch>>
  let node: FakeMultiChainNode
  beforeEach(async () => {
    area = await scratch('mc')
    node = await new FakeMultiChainNode({blockTimeMs: 100}).start()
  })
  afterEach(async () => {
    await node.stop()
    await area.dispose()
  })

  const cli = async (args: string[]) => {
    const r = await paciofs(args, {cacheDir: join(area.dir, 'cache')})
    return {...r, stderr: r.stderr.replace(/\s*›\s*/g, ' ')} // oclif wraps long error lines
  }

  it('mount --chain, write, log (heights, txids), verify clean; tampering with a file or the chain is reported', async () => {
    const m = await mountPacio(area.volume, area.mnt, {extraArgs: ['--chain', node.url]})
    try {
      fs.writeFileSync(join(area.mnt, 'a.txt'), 'invoice 1\n')
      fs.mkdirSync(join(area.mnt, 'dir'))
      fs.writeFileSync(join(area.mnt, 'dir', 'b.txt'), 'invoice 2\n')
      fs.renameSync(join(area.mnt, 'dir', 'b.txt'), join(area.mnt, 'dir', 'c.txt'))
      fs.chmodSync(join(area.mnt, 'a.txt'), 0o600)
    } finally {
      expect(await m.stop(), m.output()).to.equal(0)
    }
    expect(m.output()).to.match(/MultiChain/)
    expect(m.output()).to.not.match(/fake-secret/) // the RPC password is not printed

    const meta = JSON.parse(fs.readFileSync(join(area.volume, '.paciofs', 'volume.json'), 'utf8'))
    expect(meta.ledger).to.include({driver: 'multichain', genesis: node.chain.blocks[0].hash})
    expect(meta.ledger.stream).to.match(/^pfs-/)
    expect(fs.existsSync(join(area.volume, '.paciofs', 'ledger.db'))).to.equal(false)

    // log: without --chain (the volume remembers it); epoch = height, txid = MultiChain's
    const log = await cli(['log', '--volume', area.volume, '--json'])
    expect(log.code, log.stderr).to.equal(0)
    const entries = log.stdout.trim().split('\n').map(l => JSON.parse(l))
    expect(entries.map(e => e.record?.path)).to.include.members(['/a.txt', '/dir', '/dir/b.txt'])
    for (const e of entries) {
      expect(e.txid).to.match(/^[0-9a-f]{64}:\d+$/)
      const block = node.chain.blocks[e.epoch]
      expect(block.txids, `epoch ${e.epoch} is the height of the block holding ${e.txid}`).to.include(e.txid.split(':')[0])
    }
    const table = await cli(['log', '--volume', area.volume])
    expect(table.stdout).to.include(entries[0].txid.slice(0, 12))

    const cp = await cli(['log', '--volume', area.volume, '--checkpoint'])
    const checkpoint = JSON.parse(cp.stdout)
    expect(checkpoint.headHash).to.equal(node.chain.blocks[checkpoint.epoch].hash)
    fs.writeFileSync(join(area.dir, 'cp.json'), cp.stdout)

    let v = await cli(['verify', '--volume', area.volume, '--full'])
    expect(v.code, v.stdout + v.stderr).to.equal(0)
    expect(v.stdout).to.match(/clean/)

    const hist = await cli(['history', '/a.txt', '--volume', area.volume])
    expect(hist.code, hist.stderr).to.equal(0)

    // a file changed behind PacioFS's back
    fs.writeFileSync(join(area.volume, 'a.txt'), 'invoice 1 (edited)\n')
    v = await cli(['verify', '--volume', area.volume, '--json'])
    expect(v.code).to.equal(1)
    const report = JSON.parse(v.stdout)
    expect(report.incremental, 'the second verify builds on the first').to.not.equal(undefined)
    expect(report.divergences.map((d: {path: string; kind: string}) => `${d.kind} ${d.path}`)).to.deep.equal(['modified /a.txt'])
    const mod = report.divergences.find((d: {kind: string}) => d.kind === 'modified')
    expect(mod.record.txid).to.match(/^[0-9a-f]{64}:\d+$/)

    // the chain rewritten: every block since the first record replaced, the records gone
    const first = Math.min(...entries.map(e => e.epoch))
    node.chain.reorg(node.chain.height - first + 1, {drop: tx => tx.items.length > 0})
    v = await cli(['verify', '--volume', area.volume, '--json', '--full', '--checkpoint', join(area.dir, 'cp.json')])
    expect(v.code).to.equal(1)
    const kinds = new Set(JSON.parse(v.stdout).divergences.map((d: {kind: string}) => d.kind))
    expect(kinds.has('checkpoint-inconsistent')).to.equal(true)
    expect(kinds.has('record-tampered')).to.equal(true)
  })

  it('clear errors: node unreachable, wrong password, another chain, MultiChain not installed', async () => {
    const m = await mountPacio(area.volume, area.mnt, {extraArgs: ['--chain', node.url]})
    fs.writeFileSync(join(area.mnt, 'x.txt'), 'x')
    expect(await m.stop()).to.equal(0)

    let r = await cli(['log', '--volume', area.volume, '--chain', node.url.replace('fake-secret', 'wrong')])
    expect(r.code).to.not.equal(0)
    expect(r.stderr).to.match(/password was refused \(HTTP 401\)/)
    r = await cli(['verify', '--volume', area.volume, '--chain', 'multichain:new'])
    expect(r.code).to.equal(2)
    expect(r.stderr).to.match(/records on multichain:\/\/multichainrpc:\*\*\*@/)

    const other = await new FakeMultiChainNode({blockTimeMs: 100}).start()
    try {
      r = await cli(['log', '--volume', area.volume, '--chain', other.url.replace(`/${other.chain.name}`, `/${node.chain.name}`)])
      expect(r.code).to.not.equal(0)
      expect(r.stderr).to.match(/on another chain/)
    } finally {
      await other.stop()
    }

    await node.stop()
    r = await cli(['log', '--volume', area.volume, '--chain', node.url])
    expect(r.code).to.not.equal(0)
    expect(r.stderr).to.match(/connection refused/)
    await node.start()

    const fresh = join(area.dir, 'vol2')
    const mnt2 = join(area.dir, 'mnt2')
    fs.mkdirSync(mnt2)
    r = await cli(['mount', mnt2, '--volume', fresh, '--chain', 'multichain:new'])
    if (!process.env.PATH?.split(':').some(d => fs.existsSync(join(d, 'multichaind')))) {
      expect(r.code).to.not.equal(0)
      expect(r.stderr).to.match(/MultiChain is not installed/)
      expect(r.stderr).to.match(/multichain\.com\/download-install/)
      expect(fs.existsSync(fresh), 'nothing created').to.equal(false)
    }
    expect(await isFuseMounted(mnt2)).to.equal(false)
    r = await cli(['mount', mnt2, '--volume', fresh, '--chain', 'multichain://u@h:1/x'])
    expect(r.stderr).to.match(/password are missing/)
  })
})
