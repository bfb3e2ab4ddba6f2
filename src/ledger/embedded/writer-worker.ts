/**
 * Worker-thread side of the embedded ledger's writer (see writer.ts). Owns
 * the write connection; commits one batch per request, in arrival order.
 */
import {createPrivateKey} from 'node:crypto'
import {parentPort, workerData} from 'node:worker_threads'
import {identityFromPrivateKey} from '../../crypto/sign.js'
import {LedgerStore} from './store.js'
import {flattenError, unpackBatch} from './wire.js'
import type {WorkerInit, WorkerReply, WorkerRequest} from './writer.js'

const init = workerData as WorkerInit
const port = parentPort!
const reply = (m: WorkerReply) => port.postMessage(m)
const identity = identityFromPrivateKey(createPrivateKey({key: Buffer.from(init.pkcs8), format: 'der', type: 'pkcs8'}))

let store: LedgerStore | undefined
try {
  store = LedgerStore.openWriter({file: init.file, ledgerId: init.ledgerId, identity, tailBlocks: init.tailBlocks})
  reply({type: 'ready', head: store.head})
} catch (error) {
  reply({type: 'open-failed', error: flattenError(error)})
}

port.on('message', (m: WorkerRequest) => {
  if (m.type === 'close') {
    store?.close()
    store = undefined
    reply({type: 'closed'})
    port.close()
    return
  }
  try {
    if (!store) throw new Error('ledger store is not open')
    reply({type: 'done', id: m.id, outcome: store.commit(unpackBatch(m), identity, m.now)})
  } catch (error) {
    reply({type: 'failed', id: m.id, error: flattenError(error)})
  }
})
