/**
 * What crosses the worker-thread boundary between the embedded ledger and its
 * writer: a batch packed into one transferable buffer, and errors flattened
 * to plain data and rebuilt as the same PacioError classes on the other side.
 */
import {CorruptStateError, PacioError, type ErrorCode} from '../../errors.js'

export interface PackedBatch {
  /** the payloads' txids (32 bytes each, in order), then the payloads */
  data: ArrayBuffer
  /** n+1 offsets into data; payload i is data[offsets[i], offsets[i+1]); offsets[0] = 32 n */
  offsets: Uint32Array
}

/** Payloads and their txids (batchTxids: 32 raw bytes each) in one transferable buffer. */
export function packBatch(payloads: readonly Buffer[], ids: Buffer): PackedBatch {
  if (ids.length !== payloads.length * 32) throw new RangeError(`packBatch: ${ids.length} bytes of txids for ${payloads.length} payloads`)
  let total = ids.length
  for (const p of payloads) total += p.length
  const data = new ArrayBuffer(total)
  const view = new Uint8Array(data)
  const offsets = new Uint32Array(payloads.length + 1)
  view.set(ids, 0)
  let at = ids.length
  offsets[0] = at
  for (let i = 0; i < payloads.length; i++) {
    view.set(payloads[i], at)
    at += payloads[i].length
    offsets[i + 1] = at
  }
  return {data, offsets}
}

export function unpackBatch(b: PackedBatch): {payloads: Buffer[]; ids: Buffer} {
  const payloads: Buffer[] = new Array(b.offsets.length - 1)
  for (let i = 0; i < payloads.length; i++) payloads[i] = Buffer.from(b.data, b.offsets[i], b.offsets[i + 1] - b.offsets[i])
  return {payloads, ids: Buffer.from(b.data, 0, b.offsets[0])}
}

export interface FlatError {
  name: string
  code?: ErrorCode
  message: string
  file?: string
  epoch?: number
  suggestion?: string
  details?: Record<string, unknown>
}

export function flattenError(error: unknown): FlatError {
  if (error instanceof CorruptStateError) {
    return {name: 'CorruptStateError', code: error.code, message: error.message, file: error.file, epoch: error.epoch}
  }
  if (error instanceof PacioError) {
    return {name: 'PacioError', code: error.code, message: error.message, suggestion: error.suggestion, details: error.details}
  }
  return {name: 'Error', message: (error as Error)?.message ?? String(error)}
}

export function reviveError(e: FlatError): PacioError {
  if (e.name === 'CorruptStateError' && e.file !== undefined) {
    const prefix = `${e.file}${e.epoch === undefined ? '' : ` (epoch ${e.epoch})`}: `
    return new CorruptStateError(e.file, e.message.startsWith(prefix) ? e.message.slice(prefix.length) : e.message, e.epoch)
  }
  if (e.code) return new PacioError(e.code, e.message, {suggestion: e.suggestion, details: e.details})
  return new PacioError('ELEDGER', e.message)
}
