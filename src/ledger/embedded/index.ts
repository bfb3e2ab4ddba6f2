export {EmbeddedLedger, type EmbeddedOpenOptions, type ReadOnlyOptions} from './ledger.js'
export {DEFAULT_TAIL_BLOCKS} from './store.js'
export type {WriterPlacement} from './writer.js'
