// `--chain multichain:new` and `multichain:CHAIN@HOST:PORT`: paciofs runs a local node in the volume's
// state dir for as long as it needs one, and never leaves it behind — after an unmount, after log and
// verify, and when the mount is killed with SIGKILL. Runs with the real MultiChain binaries when they
// are on PATH, otherwise with the stand-ins in test/fakes/multichain/bin (the fake node as a process).
import {expect} from 'chai'
import fs from 'node:fs'
import {join} from 'node:path'
import {mountPacio, paciofs, REPO, scratch} from '../../helpers/paciofs.js'

const realOnPath = (process.env.PATH ?? '').split(':').some(d => d && fs.existsSync(join(d, 'multichaind')))
const env: NodeJS.ProcessEnv = realOnPath ? {} : {PATH: `${join(REPO, 'test/fakes/multichain/bin')}:${process.env.PATH}`, FAKE_MULTICHAIN_BLOCK_MS: '150'}

/** pids of node processes whose command line names this data directory */
function nodesOf(datadir: string): number[] {
  const out: number[] = []
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue
    try {
      const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8')
      if (cmd.includes('multichaind') && cmd.includes(`-datadir=${datadir}`)) out.push(Number(p))
    } catch { /* gone */ }
  }
  return out
}

async function gone(datadir: string, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (nodesOf(datadir).length === 0) return true
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  return nodesOf(datadir).length === 0
}

describe(`paciofs with a local MultiChain node (${realOnPath ? 'real multichaind' : 'stand-in binaries'})`, function () {
  this.timeout(180_000)
  let area: Awaited<ReturnType<typeof scratch>>
  beforeEach(async () => {
    area = await scratch('mclocal')
  })
  afterEach(async () => {
    for (const pid of nodesOf(join(area.volume, '.paciofs', 'multichain'))) process.kill(pid, 'SIGKILL')
    await area.dispose()
  })
  const cli = (args: string[]) => paciofs(args, {env, cacheDir: join(area.dir, 'cache'), timeoutMs: 120_000})

  it('multichain:new creates the chain in the state dir, runs its node while needed, and leaves none behind (also after SIGKILL)', async () => {
    const datadir = join(area.volume, '.paciofs', 'multichain')
    let m = await mountPacio(area.volume, area.mnt, {extraArgs: ['--chain', 'multichain:new'], env, upMs: 90_000})
    let nodes: number[]
    try {
      nodes = nodesOf(datadir)
      expect(nodes, 'one node while mounted').to.have.length(1)
      fs.writeFileSync(join(area.mnt, 'kept.txt'), 'kept\n')
      // log while mounted uses the mount's node and leaves it running
      const live = await cli(['log', '--volume', area.volume, '--json'])
      expect(live.code, live.stderr).to.equal(0)
      expect(nodesOf(datadir)).to.deep.equal(nodes)
    } finally {
      expect(await m.stop(), m.output()).to.equal(0)
    }
    expect(await gone(datadir, 10_000), 'node stopped with the unmount').to.equal(true)
    const meta = JSON.parse(fs.readFileSync(join(area.volume, '.paciofs', 'volume.json'), 'utf8'))
    expect(meta.ledger.spec).to.equal('multichain:new')
    expect(fs.existsSync(join(datadir, meta.ledger.chain))).to.equal(true)

    const log = await cli(['log', '--volume', area.volume, '--json'])
    expect(log.code, log.stderr).to.equal(0)
    expect(log.stdout).to.include('/kept.txt')
    expect(await gone(datadir, 10_000), 'log stops the node it started').to.equal(true)
    const v = await cli(['verify', '--volume', area.volume])
    expect(v.code, v.stdout + v.stderr).to.equal(0)
    expect(await gone(datadir, 10_000), 'verify stops the node it started').to.equal(true)

    // the mount dies without a chance to clean up: the watchdog ends its node
    m = await mountPacio(area.volume, area.mnt, {env, upMs: 90_000})
    expect(nodesOf(datadir)).to.have.length(1)
    await m.kill()
    expect(await gone(datadir, 15_000), 'no orphan node after SIGKILL of the mount').to.equal(true)
  })

  it('multichain:CHAIN@HOST:PORT without connect permission: a clear error naming the grant, nothing left running', async () => {
    fs.mkdirSync(area.mnt)
    const r = await paciofs(['mount', area.mnt, '--volume', area.volume, '--chain', 'multichain:archive@127.0.0.1:1'], {env, timeoutMs: 120_000})
    if (!realOnPath) {
      expect(r.code).to.not.equal(0)
      expect(r.stderr.replace(/\s*›\s*/g, ' ')).to.match(/grant 1FakeJoinerAddress\S* connect/)
    }
    expect(await gone(join(area.volume, '.paciofs', 'multichain'), 5000)).to.equal(true)
  })
})
