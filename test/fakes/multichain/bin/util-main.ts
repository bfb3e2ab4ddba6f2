// `multichain-util create CHAIN -datadir=DIR`: writes DIR/CHAIN/params.dat with the lines paciofs edits.
import fs from 'node:fs'
import path from 'node:path'

const [cmd, chain, ...rest] = process.argv.slice(2)
const datadir = rest.find(a => a.startsWith('-datadir='))?.slice('-datadir='.length)
if (cmd !== 'create' || !chain || !datadir) {
  console.error('usage: multichain-util create CHAIN -datadir=DIR')
  process.exit(1)
}
const dir = path.join(datadir, chain)
if (fs.existsSync(dir)) {
  console.error(`Blockchain parameter set was not generated: ${dir} exists`)
  process.exit(1)
}
fs.mkdirSync(dir, {recursive: true})
fs.writeFileSync(path.join(dir, 'params.dat'), [
  `chain-name = ${chain}                 # Chain name, used as first argument for multichaind and multichain-cli.`,
  'target-block-time = 15               # Target time between blocks (transaction confirmation delay), seconds. (2 - 86400)',
  'maximum-block-size = 8388608         # Maximum block size in bytes. (5000 - 1000000000)',
  'max-std-tx-size = 4194304            # Maximum standard transaction size, excluding unlimited metadata in bytes. (1024 - 100000000)',
  'max-std-op-return-size = 2097152     # Maximum size of unlimited metadata in standard transactions, bytes. (0 - 67108864)',
  '',
].join('\n'))
console.log(`Blockchain parameter set was successfully generated.\nYou can edit it in ${path.join(dir, 'params.dat')} before running multichaind for the first time.`)
