/**
 * Error classes shared by every layer. Library code throws these; commands
 * render `message` (and `suggestion` where given) and map `code` to an exit status.
 */
export type ErrorCode =
  | 'EINPUT' // bad flag or argument
  | 'ENOVOLUME' // not a PacioFS volume / does not exist
  | 'EFOREIGN' // state belongs to another volume or tool
  | 'ECORRUPT' // state on disk is damaged (names file and epoch)
  | 'EBUSY' // already mounted / locked
  | 'ENOFUSE' // FUSE not available
  | 'EPERM' // privilege needed
  | 'ELEDGER' // ledger driver failure
  | 'ETAMPER' // tamper evidence found while reading
  | 'EINTERNAL'

export class PacioError extends Error {
  readonly code: ErrorCode
  readonly suggestion?: string
  readonly details?: Record<string, unknown>

  constructor(code: ErrorCode, message: string, opts: {suggestion?: string; details?: Record<string, unknown>; cause?: unknown} = {}) {
    super(message, opts.cause === undefined ? undefined : {cause: opts.cause})
    this.name = 'PacioError'
    this.code = code
    this.suggestion = opts.suggestion
    this.details = opts.details
  }
}

/** State on disk that cannot be trusted; always names the file and, where known, the epoch. */
export class CorruptStateError extends PacioError {
  constructor(readonly file: string, message: string, readonly epoch?: number) {
    super('ECORRUPT', `${file}${epoch === undefined ? '' : ` (epoch ${epoch})`}: ${message}`, {details: {file, epoch}})
    this.name = 'CorruptStateError'
  }
}
