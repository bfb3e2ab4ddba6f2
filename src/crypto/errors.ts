/**
 * Errors raised by the crypto layer. This folder imports nothing internal, so
 * it carries its own small error class; callers above wrap it in a PacioError
 * where a file or epoch can be named.
 */
export type CryptoErrorCode =
  | 'ENONCANONICAL' // a value cannot be encoded canonically, or bytes are not a canonical encoding
  | 'EKEYFILE' // a key file is missing, unreadable, too open, or not an Ed25519 key
  | 'EKEY' // a public key or signature has the wrong shape

export class CryptoError extends Error {
  readonly code: CryptoErrorCode

  constructor(code: CryptoErrorCode, message: string, opts: {cause?: unknown} = {}) {
    super(message, opts.cause === undefined ? undefined : {cause: opts.cause})
    this.name = 'CryptoError'
    this.code = code
  }
}
