import {expect} from 'chai'
import {BIN, NODE_ARGS} from '../../helpers/paciofs.js'
import {run} from '../../helpers/exec.js'
import {relaunchArgv, SERVER_SEMI_SPACE_MB, serverExecArgv} from '../../../src/app/relaunch.js'

const VOLUME_SYS = new URL('../../../dist/volume/sys.js', import.meta.url).href

describe('serve and join relaunch node with a larger young generation', () => {
  const big = `--max-semi-space-size=${SERVER_SEMI_SPACE_MB}`

  it('replaces a smaller semi-space cap and keeps every other option in place', () => {
    expect(serverExecArgv(['--cpu-prof', '--max-semi-space-size=2', '--inspect=0']))
      .to.deep.equal(['--cpu-prof', big, '--inspect=0'])
  })

  it('leaves node as it is without a cap, with a cap as large or larger, and never loops', () => {
    expect(serverExecArgv([])).to.equal(undefined)
    expect(serverExecArgv([big])).to.equal(undefined)
    expect(serverExecArgv(['--max-semi-space-size=64'])).to.equal(undefined)
    const once = serverExecArgv(['--max-semi-space-size=2'])!
    expect(serverExecArgv(once)).to.equal(undefined)
  })

  it('relaunches serve and join only, with the same script and arguments', () => {
    const argv = ['/usr/bin/node', '/x/bin/run.js', 'serve', '--volume', 'v']
    expect(relaunchArgv(argv, ['--max-semi-space-size=2'], '/n')).to.deep.equal(['/n', big, '/x/bin/run.js', 'serve', '--volume', 'v'])
    expect(relaunchArgv(['n', 's', 'join', 'host:1'], ['--max-semi-space-size=2'], '/n')?.slice(1, 4)).to.deep.equal([big, 's', 'join'])
    for (const command of ['mount', 'verify', 'log', 'cat', undefined]) {
      const args = command ? ['n', 's', command] : ['n', 's']
      expect(relaunchArgv(args, ['--max-semi-space-size=2'], '/n'), String(command)).to.equal(undefined)
    }
  })

  it('execv keeps the pid and standard output, and passes the arguments exactly', async () => {
    const script = `const {sys} = await import(${JSON.stringify(VOLUME_SYS)}); process.stdout.write(process.pid + '\\n');` +
      ` sys.execv('/bin/sh', ['sh', '-c', 'echo "$$" "$1"', 'sh', 'a b  c'])`
    const r = await run(process.execPath, ['--input-type=module', '-e', script])
    expect(r.code, r.stderr).to.equal(0)
    const [before, after] = r.stdout.trim().split('\n')
    expect(after).to.equal(`${before} a b  c`)
  })

  it('execv of a missing program throws ENOENT and the process goes on', async () => {
    const script = `const {sys} = await import(${JSON.stringify(VOLUME_SYS)});` +
      ` try { sys.execv('/nonexistent/prog', ['prog']) } catch (e) { console.log(e.code) }` +
      ` try { sys.execv('/bin/sh', []) } catch (e) { console.log(e.name) }; console.log('still here')`
    const r = await run(process.execPath, ['--input-type=module', '-e', script])
    expect(r.stdout.trim().split('\n')).to.deep.equal(['ENOENT', 'TypeError', 'still here'])
  })

  it('`serve --help` through bin/run.js (relaunched) prints its help and exits 0', async () => {
    const r = await run(process.execPath, [...NODE_ARGS, BIN, 'serve', '--help'])
    expect(r.code, r.stderr).to.equal(0)
    expect(r.stdout).to.match(/USAGE[\s\S]*paciofs serve/)
  })
})
