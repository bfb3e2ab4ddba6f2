export type {Block, Checkpoint, Committed, Ledger, Tx} from './types.js'
export {BLOCK_FORMAT_VERSION, genesisBlock, headerBytes, sealBlock, txidOf, txMerkleRoot, verifyBlock, type BlockProblem, type BlockProblemKind} from './block.js'
export {checkConsistency, checkpointBytes, signCheckpoint, verifyCheckpoint, type ConsistencyProblemKind, type ConsistencyResult} from './checkpoint.js'
