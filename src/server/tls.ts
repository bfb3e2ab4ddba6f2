/**
 * The server's TLS key and self-signed certificate, made on first start and
 * kept in the server's state directory (tls.key mode 0600, tls.crt). Clients
 * pin the certificate's fingerprint on first contact, so it must not change:
 * it is created once and reused.
 */
import {X509Certificate, webcrypto} from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import * as x509 from '@peculiar/x509'
import {PacioError} from '../errors.js'
import {certFingerprint} from '../remote/auth.js'

export interface ServerTls {
  key: Buffer
  cert: Buffer
  /** sha256 of the certificate's DER */
  fingerprint: Buffer
}

const ALG = {name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256'}

async function generate(): Promise<{key: string; cert: string}> {
  x509.cryptoProvider.set(webcrypto as unknown as Crypto)
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as CryptoKeyPair
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(8))).toString('hex').replace(/^[89a-f]/, '1'),
    name: 'CN=paciofs-server',
    notBefore: new Date(Date.now() - 86_400_000),
    notAfter: new Date(Date.now() + 100 * 365 * 86_400_000),
    signingAlgorithm: ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign, true),
      new x509.SubjectAlternativeNameExtension([{type: 'dns', value: 'paciofs-server'}]),
    ],
  })
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)
  return {key: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'), cert: cert.toString('pem')}
}

function writeNew(file: string, text: string, mode: number): void {
  const tmp = `${file}.tmp-${process.pid}`
  const fd = fs.openSync(tmp, 'w', mode)
  try {
    fs.writeSync(fd, text)
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }

  fs.renameSync(tmp, file)
}

/** Loads the server's key and certificate from stateDir, creating them on first start. */
export async function loadOrCreateServerTls(stateDir: string): Promise<ServerTls & {created: boolean}> {
  const keyFile = path.join(stateDir, 'tls.key')
  const certFile = path.join(stateDir, 'tls.crt')
  let created = false
  if (!fs.existsSync(keyFile) || !fs.existsSync(certFile)) {
    fs.mkdirSync(stateDir, {recursive: true, mode: 0o700})
    const made = await generate()
    writeNew(certFile, made.cert, 0o644)
    writeNew(keyFile, made.key, 0o600) // last: its presence means both are complete
    created = true
  }

  const st = fs.statSync(keyFile)
  if ((st.mode & 0o077) !== 0) throw new PacioError('EINPUT', `${keyFile}: key file is accessible by group or others; chmod 600 it`)
  const key = fs.readFileSync(keyFile)
  const cert = fs.readFileSync(certFile)
  let der: Buffer
  try {
    der = new X509Certificate(cert).raw
  } catch (error) {
    throw new PacioError('ECORRUPT', `${certFile}: not a certificate`, {cause: error})
  }

  return {key, cert, fingerprint: certFingerprint(der), created}
}
