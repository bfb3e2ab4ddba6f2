/**
 * The chains the MultiChain driver's suite runs against: the fake node in
 * both reply modes, and a real `multichaind` (a new chain in a temp dir)
 * when the MultiChain binaries are on PATH.
 */
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {createChain, findBinaries, freePort, startNode, type LocalNode} from '../../src/ledger/multichain/daemon.js'
import {RpcClient, type RpcConfig} from '../../src/ledger/multichain/rpc.js'
import {FakeMultiChainNode, type FakeNodeOptions} from '../fakes/multichain/node.js'

export interface ChainUnderTest {
  name: string
  rpc: RpcConfig
  /** the fake, for tests of what only a fake can stage (reorganisations, a lagging node) */
  fake?: FakeMultiChainNode
  /** block time the chain runs with (ms) */
  blockMs: number
  /** wait for (real) or mine (fake) n more blocks */
  mine(n?: number): Promise<void>
  /** the node goes away for downMs and comes back on the same port */
  restart(downMs: number, opts?: {dropMempool?: boolean}): Promise<void>
  close(): Promise<void>
}

export interface Harness {
  name: string
  /** undefined when it can run; otherwise why not */
  unavailable(): string | undefined
  start(opts?: FakeNodeOptions): Promise<ChainUnderTest>
}

function fakeHarness(mode: '1.0' | '2.0'): Harness {
  return {
    name: `fake MultiChain ${mode}`,
    unavailable: () => undefined,
    async start(opts = {}) {
      const blockMs = opts.blockTimeMs ?? 40
      const fake = await new FakeMultiChainNode({mode, ...opts, blockTimeMs: blockMs}).start()
      return {
        name: `fake ${mode}`, rpc: fake.rpc, fake, blockMs,
        mine: async (n = 1) => {
          fake.chain.mine(n)
        },
        restart: (downMs, o) => fake.restart(downMs, o),
        close: () => fake.stop(),
      }
    },
  }
}

const realHarness: Harness = {
  name: 'real multichaind',
  unavailable() {
    try {
      findBinaries()
      return undefined
    } catch {
      return 'multichaind / multichain-util not on PATH: the suite ran against the fake only'
    }
  },
  async start() {
    const dir = mkdtempSync(join(tmpdir(), 'pacio-mc-real-'))
    const chain = 'pfstest'
    createChain(dir, chain, {blockTimeS: 2})
    const fixed = {port: await freePort(), rpcport: await freePort(), pass: 'pacio-test'}
    let node: LocalNode = await startNode({datadir: dir, chain, fixed})
    const rpc = node.rpc
    const client = new RpcClient(rpc)
    const height = async () => (await client.call<{blocks: number}>('getblockchaininfo')).blocks
    return {
      name: 'real', rpc, blockMs: 2000,
      async mine(n = 1) {
        const target = (await height()) + n
        while ((await height()) < target) await new Promise(resolve => setTimeout(resolve, 200))
      },
      async restart(downMs) {
        await node.stop()
        await new Promise(resolve => setTimeout(resolve, downMs))
        node = await startNode({datadir: dir, chain, fixed})
      },
      async close() {
        await node.stop()
        rmSync(dir, {recursive: true, force: true})
      },
    }
  },
}

export const harnesses: Harness[] = [fakeHarness('2.0'), fakeHarness('1.0'), realHarness]
export const fakeHarnesses = harnesses.slice(0, 2)
