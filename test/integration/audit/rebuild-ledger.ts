// Tamper tool for the test: rebuild a volume's ledger from scratch with a new
// producer key, carrying over every transaction (so the journal still matches).
// Usage: node --import tsx rebuild-ledger.ts <volume dir>
import fs from 'node:fs'
import path from 'node:path'
import {generateIdentity} from '../../../src/crypto/sign.js'
import {EmbeddedLedger} from '../../../src/ledger/embedded/index.js'
import {readMeta, layoutOf} from '../../../src/volume/layout.js'

const layout = layoutOf(process.argv[2])
const meta = readMeta(layout)
const old = await EmbeddedLedger.openReadOnly(layout.ledger, {ledgerId: meta.id})
const batches: Buffer[][] = []
for await (const b of old.read(1)) batches.push(b.txs.map(t => t.payload))
await old.close()
const file = path.join(layout.state, 'forged.db')
const forged = await EmbeddedLedger.open({file, ledgerId: meta.id, identity: generateIdentity(), writer: 'inline'})
for (const batch of batches) await forged.append(batch)
await forged.close()
for (const suffix of ['', '-wal', '-shm']) fs.rmSync(layout.ledger + suffix, {force: true})
fs.renameSync(file, layout.ledger)
