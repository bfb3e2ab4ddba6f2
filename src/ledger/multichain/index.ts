export {MultiChainLedger, streamName, type MultiChainOpenOptions} from './ledger.js'
export {parseChainSpec, formatChainSpec, type ChainSpec} from './spec.js'
export {createChain, findBinaries, startNode, INSTALL_HINT, type LocalNode} from './daemon.js'
export {RpcClient, RpcError, type RpcConfig} from './rpc.js'
