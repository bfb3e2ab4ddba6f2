/**
 * Trust on first use, like ssh's known_hosts: the first time a client meets a
 * server it records the server certificate's fingerprint (in
 * CONFIG/known-servers.json); afterwards it refuses a server that presents
 * another one, unless told to trust the new key.
 */
import fs from 'node:fs'
import path from 'node:path'
import tls from 'node:tls'
import {PacioError} from '../errors.js'
import {certFingerprint, showFingerprint} from './auth.js'

export interface KnownServer {
  fingerprint: string // hex sha256 of the certificate's DER
  cert: string // PEM, the trust anchor for the TLS connection
  since: string
}

type KnownFile = Record<string, KnownServer>

function read(file: string): KnownFile {
  try {
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as KnownFile
    throw new Error('not an object')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {}
    throw new PacioError('ECORRUPT', `${file}: cannot read the known servers: ${(error as Error).message}`)
  }
}

function write(file: string, known: KnownFile): void {
  fs.mkdirSync(path.dirname(file), {recursive: true, mode: 0o700})
  const tmp = `${file}.tmp-${process.pid}`
  fs.writeFileSync(tmp, JSON.stringify(known, null, 2) + '\n', {mode: 0o600})
  fs.renameSync(tmp, file)
}

/** The certificate a server presents, without trusting it yet. */
export function fetchServerCert(host: string, port: number, timeoutMs = 5_000): Promise<{der: Buffer; pem: string}> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({host, port, rejectUnauthorized: false, ALPNProtocols: ['h2'], servername: 'paciofs-server'})
    const t = setTimeout(() => {
      sock.destroy()
      reject(Object.assign(new Error(`no answer from ${host}:${port} within ${timeoutMs} ms`), {code: 'ETIMEDOUT'}))
    }, timeoutMs)
    sock.once('secureConnect', () => {
      clearTimeout(t)
      const cert = sock.getPeerX509Certificate()
      sock.destroy()
      if (!cert) reject(new Error(`${host}:${port} presented no certificate`))
      else resolve({der: cert.raw, pem: cert.toString()})
    })
    sock.once('error', error => {
      clearTimeout(t)
      reject(error)
    })
  })
}

/**
 * Checks a server's certificate against the pinned one; pins it on first
 * contact (or when trustNew is set). Returns the pinned entry.
 */
export function pinServer(file: string, address: string, got: {der: Buffer; pem: string}, opts: {trustNew?: boolean} = {}): KnownServer & {pinnedNow: boolean} {
  const known = read(file)
  const fp = certFingerprint(got.der).toString('hex')
  const have = known[address]
  if (have && have.fingerprint === fp) return {...have, pinnedNow: false}
  if (have && !opts.trustNew) {
    throw new PacioError('ETAMPER', `the server at ${address} presents a different key than before (now ${showFingerprint(Buffer.from(fp, 'hex'))}, pinned ${showFingerprint(Buffer.from(have.fingerprint, 'hex'))} since ${have.since}): refusing to connect`,
      {suggestion: `if the server's key really changed (ask its operator to compare the fingerprint \`paciofs serve\` prints), connect once with --trust-new-server-key`})
  }

  const entry: KnownServer = {fingerprint: fp, cert: got.pem, since: new Date().toISOString()}
  known[address] = entry
  write(file, known)
  return {...entry, pinnedNow: true}
}
