/**
 * Ed25519 identities via node:crypto. A participant's pid is the hex of its
 * raw 32-byte public key; signatures travel as 64-byte values (hex on the wire).
 */
import {createPrivateKey, createPublicKey, generateKeyPairSync, sign as edSign, verify as edVerify, type KeyObject} from 'node:crypto'
import {chmodSync, closeSync, fsyncSync, openSync, readFileSync, renameSync, statSync, writeSync} from 'node:fs'
import {CryptoError} from './errors.js'

export interface Identity {
  /** hex of the raw 32-byte Ed25519 public key */
  readonly pid: string
  readonly publicKey: KeyObject
  readonly privateKey: KeyObject
}

const PID = /^[0-9a-f]{64}$/
const SIG = /^[0-9a-f]{128}$/
// DER prefix of an SPKI structure holding a raw Ed25519 key (RFC 8410).
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

/** The pid (hex raw public key) of an Ed25519 public or private key. */
export function pidOf(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key
  if (pub.asymmetricKeyType !== 'ed25519') throw new CryptoError('EKEY', `not an Ed25519 key: ${pub.asymmetricKeyType}`)
  const der = pub.export({format: 'der', type: 'spki'})
  return der.subarray(der.length - 32).toString('hex')
}

/** The identity (pid, public key) of an Ed25519 private key. */
export function identityFromPrivateKey(privateKey: KeyObject): Identity {
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519') throw new CryptoError('EKEY', 'not an Ed25519 private key')
  const publicKey = createPublicKey(privateKey)
  return {pid: pidOf(publicKey), publicKey, privateKey}
}

export function generateIdentity(): Identity {
  const {privateKey} = generateKeyPairSync('ed25519')
  return identityFromPrivateKey(privateKey)
}

const keyCache = new Map<string, KeyObject>()
const KEY_CACHE_MAX = 4096

/** The public key for a pid. Throws CryptoError('EKEY') if pid is not 64 lowercase hex digits. */
export function publicKeyFromPid(pid: string): KeyObject {
  const hit = keyCache.get(pid)
  if (hit) return hit
  if (!PID.test(pid)) throw new CryptoError('EKEY', `not a pid (64 hex digits): ${JSON.stringify(pid).slice(0, 80)}`)
  const key = createPublicKey({key: Buffer.concat([SPKI_ED25519_PREFIX, Buffer.from(pid, 'hex')]), format: 'der', type: 'spki'})
  if (keyCache.size >= KEY_CACHE_MAX) keyCache.clear()
  keyCache.set(pid, key)
  return key
}

/** Ed25519 signature (64 bytes) over data. */
export function sign(identity: Identity | KeyObject, data: Uint8Array): Buffer {
  const key = 'privateKey' in identity ? identity.privateKey : identity
  return edSign(null, data, key)
}

/**
 * True iff sig is a valid Ed25519 signature of data by the key (a pid or a
 * KeyObject). Never throws: a malformed pid or signature is simply invalid.
 */
export function verify(key: string | KeyObject, data: Uint8Array, sig: Uint8Array | string): boolean {
  try {
    const pub = typeof key === 'string' ? publicKeyFromPid(key) : key
    let raw: Uint8Array
    if (typeof sig === 'string') {
      if (!SIG.test(sig)) return false
      raw = Buffer.from(sig, 'hex')
    } else {
      raw = sig
    }
    if (raw.length !== 64) return false
    return edVerify(null, data, pub, raw)
  } catch {
    return false
  }
}

/**
 * Write the private key as PKCS#8 PEM with mode 0600. The file is written
 * beside its final name, fsync'ed and renamed, so a crash never leaves half a key.
 * Refuses to overwrite an existing file.
 */
export function saveIdentity(file: string, identity: Identity): void {
  const pem = identity.privateKey.export({format: 'pem', type: 'pkcs8'}) as string
  let exists = true
  try {
    statSync(file)
  } catch {
    exists = false
  }
  if (exists) throw new CryptoError('EKEYFILE', `${file}: key file already exists`)
  const tmp = `${file}.tmp-${process.pid}`
  const fd = openSync(tmp, 'wx', 0o600)
  try {
    writeSync(fd, pem)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  chmodSync(tmp, 0o600) // umask cannot widen it, but be explicit
  renameSync(tmp, file)
}

/**
 * Read a PEM private key written by saveIdentity. Refuses a file that group or
 * others may read (like ssh does), or one that is not an Ed25519 key.
 */
export function loadIdentity(file: string): Identity {
  let text: string
  try {
    const st = statSync(file)
    if ((st.mode & 0o077) !== 0) {
      throw new CryptoError('EKEYFILE', `${file}: key file is accessible by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`)
    }
    text = readFileSync(file, 'utf8')
  } catch (error) {
    if (error instanceof CryptoError) throw error
    throw new CryptoError('EKEYFILE', `${file}: cannot read key file: ${(error as Error).message}`, {cause: error})
  }
  let key: KeyObject
  try {
    key = createPrivateKey({key: text, format: 'pem'})
  } catch (error) {
    throw new CryptoError('EKEYFILE', `${file}: not a PEM private key`, {cause: error})
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new CryptoError('EKEYFILE', `${file}: not an Ed25519 key (${key.asymmetricKeyType})`)
  return identityFromPrivateKey(key)
}
