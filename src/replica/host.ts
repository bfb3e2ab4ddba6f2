/**
 * What the Replica service needs of one volume it hosts, on the primary (the
 * server whose ledger it is) and on a replica (which mirrors it). The primary
 * records membership decisions; a replica answers from its own copy.
 */
import {EventEmitter} from 'node:events'
import type {HistoryStore} from '../history/store.js'
import type {Block, Checkpoint} from '../ledger/types.js'
import type {RecordBody} from '../volume/recorder.js'
import type {ServerSet} from './servers.js'

export type AcceptPolicy = 'any' | 'manual'

export interface AppliedReport {
  epoch: number
  seen: number
}

export interface ReplicaHost {
  name: string
  volumeId: string
  role: 'primary' | 'replica'
  accept: AcceptPolicy
  /** this server's key: on the primary the volume's node key (the ledger's producer) */
  serverKey: string
  read(from: number): AsyncIterable<Block>
  checkpoint(epoch: number): Promise<Checkpoint>
  headEpoch(): number
  /** emits 'block' when a block is committed (primary) or applied (replica) */
  readonly blocks: EventEmitter
  preimage(hash: Buffer): {salt: Buffer; record: Buffer} | undefined
  history?: HistoryStore
  root: string
  isMember(key: string): boolean
  members(): string[]
  servers: ServerSet
  /** primary: records a server-* record on the ledger, made by `by`, and applies it to `servers` */
  record?(body: RecordBody, by: string): Promise<void>
  /** primary: how far each replica says it has applied the ledger */
  applied: Map<string, AppliedReport>
  /** called after a replica's report changed `applied` */
  appliedChanged?(): void
  /** replica: the primary's head as last seen, and where the primary is */
  primaryHead?(): number
  primaryAddress?: string
}
