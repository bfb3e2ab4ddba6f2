// The CLI's promises for bad input: one clear line, a non-zero exit, nothing created or left mounted.
import {expect} from 'chai'
import fs from 'node:fs'
import {join} from 'node:path'
import {isFuseMounted} from '../../helpers/bindfs.js'
import {spawn} from 'node:child_process'
import {childEnv} from '../../helpers/exec.js'
import {BIN, NODE_ARGS, REPO, mountPacio, paciofs, scratch} from '../../helpers/paciofs.js'

describe('paciofs CLI', function () {
  this.timeout(60_000)
  let area: Awaited<ReturnType<typeof scratch>>
  beforeEach(async () => {
    area = await scratch('cli')
  })
  afterEach(async () => area.dispose())

  const fails = async (args: string[], pattern: RegExp) => {
    const res = await paciofs(args)
    expect(res.code, `exit status of paciofs ${args.join(' ')}`).to.not.equal(0)
    expect(res.stderr).to.match(pattern)
    return res
  }

  it('has help with examples for mount and log', async () => {
    for (const cmd of ['mount', 'log']) {
      const res = await paciofs([cmd, '--help'])
      expect(res.code).to.equal(0)
      expect(res.stdout).to.match(/EXAMPLES/)
      expect(res.stdout).to.match(/--volume/)
    }
  })

  it('mount refuses a mountpoint that does not exist or is not empty', async () => {
    await fails(['mount', join(area.dir, 'nope'), '--volume', area.volume], /does not exist/)
    fs.mkdirSync(area.mnt)
    fs.writeFileSync(join(area.mnt, 'x'), 'x')
    await fails(['mount', area.mnt, '--volume', area.volume], /not empty/)
    expect(fs.existsSync(area.volume), 'no volume created on failure').to.equal(false)
  })

  it('mount refuses a volume that is a file or a non-empty foreign directory', async () => {
    fs.mkdirSync(area.mnt)
    fs.writeFileSync(area.volume, 'not a dir')
    await fails(['mount', area.mnt, '--volume', area.volume], /not a directory/)
    fs.rmSync(area.volume)
    fs.mkdirSync(area.volume)
    fs.writeFileSync(join(area.volume, 'someone-elses.txt'), 'x')
    await fails(['mount', area.mnt, '--volume', area.volume], /not empty and not a PacioFS volume/)
    fs.rmSync(join(area.volume, 'someone-elses.txt'))
    fs.mkdirSync(join(area.volume, '.paciofs'))
    fs.writeFileSync(join(area.volume, '.paciofs', 'volume.json'), '{"format":"other-tool","version":1,"id":"x"}')
    await fails(['mount', area.mnt, '--volume', area.volume], /another tool/)
    expect(await isFuseMounted(area.mnt)).to.equal(false)
  })

  it('mount refuses a volume in use and a mountpoint already mounted', async () => {
    const m = await mountPacio(area.volume, area.mnt)
    try {
      const other = join(area.dir, 'mnt2')
      fs.mkdirSync(other)
      await fails(['mount', other, '--volume', area.volume], /in use by process/)
      await fails(['mount', area.mnt, '--volume', join(area.dir, 'vol2')], /already a mount point/)
    } finally {
      expect(await m.stop()).to.equal(0)
    }

    expect(await isFuseMounted(area.mnt)).to.equal(false)
  })

  it('log --follow prints records as they are committed, and stops on SIGINT', async () => {
    const m = await mountPacio(area.volume, area.mnt)
    const child = spawn(process.execPath, [...NODE_ARGS, BIN, 'log', '--volume', area.volume, '--follow', '--json'],
      {env: childEnv({PACIOFS_CONFIG_DIR: join(REPO, '.tmp', 'config')}), stdio: ['ignore', 'pipe', 'pipe']})
    let out = ''
    child.stdout.on('data', d => (out += d))
    const exited = new Promise<number | null>(r => child.on('exit', code => r(code)))
    try {
      fs.writeFileSync(join(area.mnt, 'followed.txt'), 'x')
      const deadline = Date.now() + 15_000
      while (!out.includes('/followed.txt') && Date.now() < deadline) await new Promise(r => setTimeout(r, 100))
      expect(out).to.include('/followed.txt')
      child.kill('SIGINT')
      expect(await exited).to.equal(0)
    } finally {
      child.kill('SIGKILL')
      expect(await m.stop()).to.equal(0)
    }
  })

  it('log: --since past the head prints nothing and exits 0; bad values and volumes fail clearly', async () => {
    const m = await mountPacio(area.volume, area.mnt)
    fs.writeFileSync(join(area.mnt, 'a'), 'a') // another process than the mount's: fine
    expect(await m.stop()).to.equal(0)
    const all = await paciofs(['log', '--volume', area.volume, '--json'])
    expect(all.code).to.equal(0)
    const entries = all.stdout.trim().split('\n').map(l => JSON.parse(l))
    expect(entries.map(e => e.record.op)).to.deep.equal(['create', 'write'])
    const head = entries.at(-1).epoch
    const past = await paciofs(['log', '--volume', area.volume, '--since', String(head + 1), '--json'])
    expect(past.code).to.equal(0)
    expect(past.stdout).to.equal('')
    const last = await paciofs(['log', '--volume', area.volume, '--since', String(head), '--json'])
    expect(last.stdout.trim().split('\n')).to.have.length(entries.filter(e => e.epoch === head).length)
    const table = await paciofs(['log', '--volume', area.volume, '--path', '/a'])
    expect(table.stdout).to.match(/create/).and.match(/2 records/)
    await fails(['log', '--volume', area.volume, '--since', 'yesterday'], /integer/)
    await fails(['log', '--volume', area.volume, '--since', '-3'], /./)
    await fails(['log', '--volume', join(area.dir, 'missing')], /not a PacioFS volume/)
  })
})
