/**
 * A gRPC channel to a PacioFS server that trusts exactly one certificate
 * (sha256 of its DER): the client's pinned server, or a peer named on the
 * ledger. One set of channel options for both: message limits, keepalive
 * pings that notice a gone server within seconds, a window large enough for
 * 1 MiB messages, and a connection of its own (a session is bound to it).
 */
import * as grpc from '@grpc/grpc-js'
import {certFingerprint} from './auth.js'
import {MAX_MESSAGE} from './wire.js'

export function pinnedClient(definition: grpc.ServiceDefinition, service: string, host: string, port: number, pem: string, fingerprint: string): grpc.Client {
  const creds = grpc.credentials.createSsl(Buffer.from(pem), null, null, {
    checkServerIdentity: (_host, cert) => {
      const fp = cert.raw ? certFingerprint(cert.raw).toString('hex') : ''
      return fp === fingerprint ? undefined : new Error(`the server's certificate ${fp.slice(0, 16)}… is not the pinned one ${fingerprint.slice(0, 16)}…`)
    },
  })
  const Client = grpc.makeGenericClientConstructor(definition, service)
  return new Client(`${host.includes(':') ? `[${host}]` : host}:${port}`, creds, {
    'grpc.ssl_target_name_override': 'paciofs-server',
    'grpc.max_receive_message_length': MAX_MESSAGE,
    'grpc.max_send_message_length': MAX_MESSAGE,
    'grpc.keepalive_time_ms': 5_000,
    'grpc.keepalive_timeout_ms': 3_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.initial_reconnect_backoff_ms': 200,
    'grpc.max_reconnect_backoff_ms': 2_000,
    'grpc.enable_retries': 0,
    'grpc-node.flow_control_window': 8 * 1024 * 1024, // reads of 1 MiB without waiting for window updates
    'grpc.use_local_subchannel_pool': 1, // a connection of its own: a session is bound to it
  })
}
