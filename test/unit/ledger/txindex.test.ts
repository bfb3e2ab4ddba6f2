import Database from 'better-sqlite3'
import {expect} from 'chai'
import {execFileSync, spawn} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {generateIdentity, type Identity} from '../../../src/crypto/sign.js'
import {CorruptStateError} from '../../../src/errors.js'
import {EmbeddedLedger} from '../../../src/ledger/embedded/index.js'
import {LedgerStore, batchTxids} from '../../../src/ledger/embedded/store.js'

const p = (s: string) => Buffer.from(s)
const storeUrl = new URL('../../../src/ledger/embedded/store.ts', import.meta.url).href
const signUrl = new URL('../../../src/crypto/sign.ts', import.meta.url).href
const ledgerUrl = new URL('../../../src/ledger/embedded/index.ts', import.meta.url).href

/** Rows of the active table and of every sealed generation's table. */
function indexRows(db: Database.Database): number {
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'txindex*'").pluck().all() as string[]
  return tables.reduce((n, t) => n + (db.prepare(`SELECT count(*) AS n FROM ${t}`).get() as {n: number}).n, 0)
}

function indexState(file: string): {rows: number; txs: number; mark: string | undefined; head: number; gens: number} {
  const db = new Database(file, {readonly: true})
  try {
    return {
      rows: indexRows(db),
      gens: (db.prepare('SELECT count(*) AS n FROM txseal').get() as {n: number}).n,
      txs: (db.prepare('SELECT total(ntx) AS n FROM blocks').get() as {n: number}).n,
      mark: (db.prepare("SELECT value FROM meta WHERE key = 'indexedTo'").get() as {value: string} | undefined)?.value,
      head: (db.prepare('SELECT max(epoch) AS e FROM blocks').get() as {e: number}).e,
    }
  } finally {
    db.close()
  }
}

/**
 * A writer in another process commits `blocks` blocks of 3 payloads each
 * (`b<block>-<i>`) and dies with SIGKILL, without closing: its txids that
 * were still waiting for the index are lost with it.
 */
/** validateAll() of a read-only open must fail with a CorruptStateError whose message matches `re`. */
async function expectValidateAllFails(file: string, re: RegExp): Promise<void> {
  const ro = await EmbeddedLedger.openReadOnly(file)
  try {
    await ro.validateAll()
    expect.fail('validateAll passed')
  } catch (error) {
    expect(error).to.be.instanceOf(CorruptStateError)
    expect((error as Error).message).to.match(re)
  } finally {
    await ro.close()
  }
}

function crashWriter(file: string, identity: Identity, blocks: number, opts: {sealAt?: number; indexBudget?: number} = {}): void {
  const pkcs8 = identity.privateKey.export({format: 'der', type: 'pkcs8'}).toString('base64')
  const script = `
    import {createPrivateKey} from 'node:crypto'
    const {LedgerStore} = await import(${JSON.stringify(storeUrl)})
    const {identityFromPrivateKey} = await import(${JSON.stringify(signUrl)})
    const identity = identityFromPrivateKey(createPrivateKey({key: Buffer.from(${JSON.stringify(pkcs8)}, 'base64'), format: 'der', type: 'pkcs8'}))
    const store = LedgerStore.openWriter({file: ${JSON.stringify(file)}, ledgerId: 'vol-T', identity, ...${JSON.stringify(opts)}})
    for (let b = 0; b < ${blocks}; b++) store.commit([0, 1, 2].map((i) => Buffer.from('b' + b + '-' + i)), identity, Date.now())
    process.kill(process.pid, 'SIGKILL')
  `
  try {
    execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {stdio: 'pipe'})
  } catch (error) {
    if ((error as {signal?: string}).signal !== 'SIGKILL') throw error
  }
}

describe('ledger/embedded: txid index written behind the blocks', () => {
  let dir: string
  let file: string
  let identity: Identity

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pacio-txindex-'))
    file = join(dir, 'ledger.db')
    identity = generateIdentity()
  })
  afterEach(() => rmSync(dir, {recursive: true, force: true}))

  it('stays idempotent over many blocks, whether a txid waits in memory or is in the table', async () => {
    const l = await EmbeddedLedger.open({file, ledgerId: 'vol-T', identity, writer: 'inline', groupWindowMs: 0})
    const first: number[] = []
    for (let b = 0; b < 40; b++) first.push((await l.append([p(`old-${b}`), p(`x-${b}`)]))[0].epoch)
    const head = (await l.head()).epoch
    // every payload again, with a new one: old ones keep their epochs, only the new one is added
    for (let b = 0; b < 40; b++) {
      const r = await l.append([p(`old-${b}`), p(`new-${b}`), p(`old-${b}`)])
      expect(r[0].epoch).to.equal(first[b])
      expect(r[2].epoch).to.equal(first[b])
      expect(r[1].epoch).to.be.greaterThan(head)
    }
    expect((await l.append([p('old-0'), p('new-39')])).map((c) => c.epoch)).to.deep.equal([first[0], head + 40])
    expect((await l.head()).epoch).to.equal(head + 40) // no block for the duplicates alone
    await l.validateAll()
    await l.close()
    const s = indexState(file)
    expect(s.rows).to.equal(s.txs) // close writes everything that waited
    expect(s.rows).to.equal(120)
    expect(s.mark).to.equal(String(s.head))
  })

  it('writes the index in slots while blocks commit, and marks how far it is complete', async () => {
    const store = LedgerStore.openWriter({file, ledgerId: 'vol-T', identity, indexBudget: 512})
    for (let b = 0; b < 50; b++) store.commit(Array.from({length: 64}, (_, i) => p(`${b}/${i}`)), identity, Date.now())
    const s = indexState(file)
    expect(s.rows).to.be.greaterThan(0).and.lessThan(s.txs) // some wait in memory
    expect(Number(s.mark)).to.be.greaterThan(0).and.lessThan(s.head)
    // every block up to the mark is wholly in the table
    const db = new Database(file, {readonly: true})
    const due = (db.prepare('SELECT total(ntx) AS n FROM blocks WHERE epoch <= ?').get(Number(s.mark)) as {n: number}).n
    const covered = (db.prepare('SELECT count(*) AS n FROM txindex WHERE epoch <= ?').get(Number(s.mark)) as {n: number}).n
    db.close()
    expect(covered).to.equal(due)
    store.close()
    const after = indexState(file)
    expect(after.rows).to.equal(50 * 64)
    expect(after.mark).to.equal(String(after.head))
  })

  it('writes slots only while more than its budget of txids waits, whatever the block size, and finds duplicates in the table and in memory', () => {
    const store = LedgerStore.openWriter({file, ledgerId: 'vol-T', identity, indexBudget: 600})
    const block = (b: number, n: number) => Array.from({length: n}, (_, i) => p(`${b}/${i}`))
    // 40 small blocks, 400 txids: under the budget, the table gets none of them (one slot per block wrote some)
    for (let b = 0; b < 40; b++) store.commit(block(b, 10), identity, Date.now())
    expect(indexState(file).rows).to.equal(0)
    // then blocks of every size: never more than the budget waits (or one block, which waits whole)
    const sizes = [1, 500, 3, 90, 1200, 7, 64, 333, 2, 800]
    for (let b = 40; b < 40 + 3 * sizes.length; b++) {
      const n = sizes[b % sizes.length]
      store.commit(block(b, n), identity, Date.now())
      const s = indexState(file)
      expect(s.txs - s.rows).to.be.at.most(Math.max(600, n))
    }
    const s = indexState(file)
    expect(s.rows).to.be.greaterThan(0)
    // payloads in the table, waiting in memory, and new ones, in one batch
    const old = [p('0/0'), p('41/499'), p('67/332'), p('69/1')]
    const db = new Database(file, {readonly: true})
    const inTable = old.map((o) => db.prepare('SELECT 1 FROM txindex WHERE txid = ?').get(batchTxids([o])) !== undefined)
    db.close()
    expect(inTable).to.include(true).and.to.include(false)
    const r = store.commit([...old, p('new')], identity, Date.now())
    expect(r.prior).to.deep.equal([0, 1, 1, 42, 2, 68, 3, 70])
    expect(r.block?.epoch).to.equal(71)
    store.close()
    const after = indexState(file)
    expect(after.rows).to.equal(after.txs)
  })

  it('after a writer is killed: verify accepts the lagging index, the next writer completes it, duplicates are still found', async () => {
    const l0 = await EmbeddedLedger.open({file, ledgerId: 'vol-T', identity, writer: 'inline'})
    await l0.close()
    crashWriter(file, identity, 30)
    const crashed = indexState(file)
    expect(crashed.head).to.equal(30)
    expect(crashed.rows).to.be.lessThan(crashed.txs)

    const ro = await EmbeddedLedger.openReadOnly(file, {ledgerId: 'vol-T'})
    await ro.validateAll() // the auditor's full check: a lag after the mark is no damage
    await ro.close()

    const l = await EmbeddedLedger.open({file, ledgerId: 'vol-T', identity, writer: 'inline'})
    const reopened = indexState(file)
    expect(reopened.rows).to.equal(reopened.txs)
    expect(reopened.mark).to.equal('30')
    const r = await l.append([p('b29-2'), p('b0-0'), p('fresh')])
    expect(r.map((c) => c.epoch)).to.deep.equal([30, 1, 31])
    await l.validateAll()
    await l.close()
  })

  it('kill -9 of a worker writer while appends are in flight: every acknowledged append is on the ledger after reopen', async function () {
    this.timeout(60_000)
    const pkcs8 = identity.privateKey.export({format: 'der', type: 'pkcs8'}).toString('base64')
    // 8 callers append back to back; each acknowledged txid is written to stdout at once
    const script = `
      import {createPrivateKey} from 'node:crypto'
      import {writeSync} from 'node:fs'
      const {EmbeddedLedger} = await import(${JSON.stringify(ledgerUrl)})
      const {identityFromPrivateKey} = await import(${JSON.stringify(signUrl)})
      const identity = identityFromPrivateKey(createPrivateKey({key: Buffer.from(${JSON.stringify(pkcs8)}, 'base64'), format: 'der', type: 'pkcs8'}))
      const l = await EmbeddedLedger.open({file: ${JSON.stringify(file)}, ledgerId: 'vol-T', identity, writer: 'worker'})
      writeSync(1, 'open\\n')
      let n = 0
      await Promise.all(Array.from({length: 8}, async () => {
        for (;;) {
          const r = await l.append(Array.from({length: 50}, () => Buffer.from('k' + n++)))
          writeSync(1, r.map((c) => c.txid + ' ' + c.epoch).join('\\n') + '\\n')
        }
      }))
    `
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {stdio: ['ignore', 'pipe', 'pipe']})
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
    })
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString()
    })
    const exited = new Promise((resolve) => child.once('exit', resolve))
    for (let i = 0; i < 600 && out.split('\n').length < 2000; i++) await new Promise((r) => setTimeout(r, 50))
    child.kill('SIGKILL')
    await exited
    const acked = out.split('\n').filter((line) => /^[0-9a-f]{64} \d+$/.test(line)).map((line) => line.split(' '))
    expect(acked.length, err).to.be.greaterThan(100)
    const l = await EmbeddedLedger.open({file, ledgerId: 'vol-T', identity, writer: 'worker'})
    const onLedger = new Map<string, number>()
    for await (const b of l.read(1)) for (const t of b.txs) onLedger.set(t.txid, b.epoch)
    for (const [txid, epoch] of acked) expect(onLedger.get(txid), txid).to.equal(Number(epoch))
    await l.validateAll()
    const s = indexState(file)
    expect(s.rows).to.equal(s.txs) // the index caught up at open
    await l.close()
  })

  it('validateAll() reports an index entry missing below the mark', async () => {
    const l = await EmbeddedLedger.open({file, ledgerId: 'vol-T', identity, writer: 'inline'})
    for (let b = 0; b < 5; b++) await l.append([p(`a${b}`), p(`b${b}`)])
    await l.close()
    const db = new Database(file)
    db.prepare('DELETE FROM txindex WHERE epoch = 2').run()
    db.close()
    await expectValidateAllFails(file, /txid index holds 8 entries, blocks hold 10/)
  })
})

describe('ledger/embedded: the txid index in sealed generations', () => {
  let dir: string
  let file: string
  let identity: Identity
  const block = (b: number, n: number) => Array.from({length: n}, (_, i) => p(`${b}/${i}`))

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pacio-txgens-'))
    file = join(dir, 'ledger.db')
    identity = generateIdentity()
  })
  afterEach(() => rmSync(dir, {recursive: true, force: true}))

  it('seals the table when it holds sealAt entries: the active table stays small, duplicates are found in every generation', () => {
    const store = LedgerStore.openWriter({file, ledgerId: 'vol-T', identity, indexBudget: 64, sealAt: 300})
    for (let b = 0; b < 60; b++) {
      store.commit(block(b, 40), identity, Date.now())
      const db = new Database(file, {readonly: true})
      const active = (db.prepare('SELECT count(*) AS n FROM txindex').get() as {n: number}).n
      db.close()
      expect(active).to.be.lessThan(300)
    }
    const s = indexState(file)
    expect(s.gens).to.be.at.least(6) // 2,400 txids, at most 64 + 40 waiting, 300 per generation
    // the oldest, a middle one, the newest, and the ones still waiting: all known with their epochs
    const r = store.commit([p('0/0'), p('17/39'), p('45/3'), p('59/39'), p('fresh')], identity, Date.now())
    expect(r.prior).to.deep.equal([0, 1, 1, 18, 2, 46, 3, 60])
    store.close()
    const after = indexState(file)
    expect(after.rows).to.equal(after.txs)
    // a new writer loads the generations' filters and still finds them
    const saved = () => {
      const db = new Database(file, {readonly: true})
      const n = (db.prepare('SELECT count(*) AS n FROM txactive').get() as {n: number}).n
      db.close()
      return n
    }
    expect(saved()).to.equal(1) // the close kept the active table's filter
    const again = LedgerStore.openWriter({file, ledgerId: 'vol-T', identity, indexBudget: 64, sealAt: 300})
    expect(saved()).to.equal(0) // for this open only
    const r2 = again.commit([p('3/7'), p('30/30'), p('fresh'), p('fresh2')], identity, Date.now())
    expect(r2.prior).to.deep.equal([0, 4, 1, 31, 2, 61])
    // the next generation is sealed with the filter the close saved: it must cover what the table held then
    for (let b = 100; b < 120; b++) again.commit(block(b, 40), identity, Date.now())
    expect(indexState(file).gens).to.be.greaterThan(after.gens)
    again.integrityCheck()
    again.close()
  })

  it('a writer killed after sealing with blocks not yet indexed: the reopened index holds each txid once', () => {
    crashWriter(file, identity, 200, {indexBudget: 40, sealAt: 150})
    const crashed = indexState(file)
    expect(crashed.gens).to.be.greaterThan(0)
    expect(crashed.rows).to.be.lessThan(crashed.txs)
    const store = LedgerStore.openWriter({file, ledgerId: 'vol-T', identity, indexBudget: 40, sealAt: 150})
    const reopened = indexState(file)
    expect(reopened.rows).to.equal(reopened.txs) // none twice (a sealed generation held some of the re-indexed blocks)
    store.integrityCheck()
    const r = store.commit([p('b0-0'), p('b199-2'), p('new')], identity, Date.now())
    expect(r.prior).to.deep.equal([0, 1, 1, 200])
    // the next generation is sealed with the filter rebuilt at open (no clean close saved one)
    const gens = indexState(file).gens
    for (let b = 0; b < 30; b++) store.commit(block(1000 + b, 10), identity, Date.now())
    expect(indexState(file).gens).to.be.greaterThan(gens)
    store.integrityCheck()
    store.close()
  })

  it('integrityCheck names a generation whose filter would let a duplicate through', async () => {
    const store = LedgerStore.openWriter({file, ledgerId: 'vol-T', identity, indexBudget: 16, sealAt: 100})
    for (let b = 0; b < 10; b++) store.commit(block(b, 30), identity, Date.now())
    store.close()
    const db = new Database(file)
    const gen = db.prepare('SELECT gen, length(bloom) AS n FROM txseal ORDER BY gen LIMIT 1').get() as {gen: number; n: number}
    db.prepare('UPDATE txseal SET bloom = zeroblob(?) WHERE gen = ?').run(gen.n, gen.gen)
    db.close()
    await expectValidateAllFails(file, new RegExp(`txid index generation ${gen.gen}: its filter misses txid [0-9a-f]{64}`))
  })

  it('opens a version-1 ledger (no generations table): a reader as it is, a writer upgrades it', () => {
    const store = LedgerStore.openWriter({file, ledgerId: 'vol-T', identity})
    store.commit(block(0, 5), identity, Date.now())
    store.close()
    const db = new Database(file)
    db.exec('DROP TABLE txseal')
    db.pragma('user_version = 1')
    db.close()
    const ro = LedgerStore.openReader({file, ledgerId: 'vol-T'})
    ro.integrityCheck()
    ro.close()
    const w = LedgerStore.openWriter({file, ledgerId: 'vol-T', identity, indexBudget: 1, sealAt: 8})
    expect(w.commit([p('0/1'), ...block(1, 9)], identity, Date.now()).prior).to.deep.equal([0, 1])
    w.commit(block(2, 3), identity, Date.now()) // writes the 9 waiting: 14 entries, sealed
    w.close()
    expect(indexState(file).gens).to.equal(1)
    const check = new Database(file, {readonly: true})
    expect(check.pragma('user_version', {simple: true})).to.equal(2)
    check.close()
  })
})
