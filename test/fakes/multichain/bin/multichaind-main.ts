// `multichaind CHAIN[@HOST:PORT] -datadir=DIR -rpcport=P -rpcuser=U -rpcpassword=W ...`: the fake node as a
// process. The chain lives in DIR/CHAIN/fake-chain.json (saved as blocks come and at stop), so a restarted
// node has its chain. A first start that joins CHAIN@HOST:PORT initialises and exits asking for the
// connect permission, as multichaind does, unless FAKE_MULTICHAIN_JOIN=allow. FAKE_MULTICHAIN_BLOCK_MS
// overrides the chain's target-block-time.
import fs from 'node:fs'
import path from 'node:path'
import {FakeChain} from '../chain.js'
import {FakeMultiChainNode} from '../node.js'

const args = process.argv.slice(2)
const opt = (k: string) => args.find(a => a.startsWith(`-${k}=`))?.slice(k.length + 2)
const target = args.find(a => !a.startsWith('-')) ?? ''
const [chainName, joinAt] = target.split('@')
const datadir = opt('datadir')!
const dir = path.join(datadir, chainName)
const stateFile = path.join(dir, 'fake-chain.json')
if (!fs.existsSync(path.join(dir, 'params.dat')) && !fs.existsSync(stateFile)) {
  if (!joinAt) {
    console.error(`Error: Blockchain parameter set for ${chainName} not found`)
    process.exit(1)
  }
  fs.mkdirSync(dir, {recursive: true})
  if (process.env.FAKE_MULTICHAIN_JOIN !== 'allow') {
    console.log(`Retrieving blockchain parameters from the seed node ${joinAt} ...\nBlockchain successfully initialized.\n\nPlease ask blockchain admin or user having activate permission to let you connect and/or transact:\nmultichain-cli ${chainName} grant 1FakeJoinerAddressxxxxxxxxxxxxxxxx connect`)
    process.exit(1)
  }
}
const params = fs.existsSync(path.join(dir, 'params.dat')) ? fs.readFileSync(path.join(dir, 'params.dat'), 'utf8') : ''
const blockS = Number(/^target-block-time\s*=\s*(\d+)/m.exec(params)?.[1] ?? 15)
const chain = fs.existsSync(stateFile) ? FakeChain.load(fs.readFileSync(stateFile, 'utf8')) : new FakeChain({name: chainName})
const fresh = !fs.existsSync(stateFile)
const save = () => {
  fs.writeFileSync(stateFile + '.tmp', chain.save())
  fs.renameSync(stateFile + '.tmp', stateFile)
}
let node: FakeMultiChainNode
const stop = async () => {
  await node.stop()
  save()
  process.exit(0)
}
node = new FakeMultiChainNode({chain, user: opt('rpcuser'), pass: opt('rpcpassword'), blockTimeMs: Number(process.env.FAKE_MULTICHAIN_BLOCK_MS ?? blockS * 1000), onStop: () => void stop()})
if (fresh) chain.mine(1)
node.port = Number(opt('rpcport'))
await node.start()
const timer = setInterval(save, 500)
timer.unref()
process.on('SIGTERM', () => void stop())
process.on('SIGINT', () => void stop())
console.log(`MultiChain 2.0.7 Daemon (fake) started, RPC on ${node.port}`)
