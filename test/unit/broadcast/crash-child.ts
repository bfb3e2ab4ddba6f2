/**
 * Child process for the crash test: broadcasts p<start>, p<start+1>, ...
 * forever over the embedded ledger in <dir>, writing each payload's name to
 * <dir>/returned-<start>.txt only after broadcast() has returned (with a
 * write(2) to a file: it is in the file when the call returns, whereas
 * process.stdout on a pipe may still queue it when the kill comes). The
 * parent kills it with SIGKILL.
 *   node --import tsx crash-child.ts <dir> <start>
 */
import {openSync, writeSync} from 'node:fs'
import {join} from 'node:path'
import {setImmediate as tick} from 'node:timers/promises'
import {Broadcast} from '../../../src/broadcast/broadcast.js'
import {loadIdentity} from '../../../src/crypto/sign.js'
import {EmbeddedLedger} from '../../../src/ledger/embedded/index.js'

const [dir, startArg] = process.argv.slice(2)
const identity = loadIdentity(join(dir, 'id.pem'))
const ledger = await EmbeddedLedger.open({file: join(dir, 'ledger.db'), ledgerId: 'crash-vol', identity})
const bc = await new Broadcast({ledger, identity, file: join(dir, 'broadcast.db'), flushMs: 2, maxBatch: 64}).open()
const returned = openSync(join(dir, `returned-${startArg}.txt`), 'a')
process.stdout.write('ready\n')
for (let i = Number(startArg); ; i++) {
  void bc.broadcast(Buffer.from(`p${i}`))
  writeSync(returned, `p${i}\n`) // written means broadcast() returned
  if (i % 25 === 0) await tick()
}
