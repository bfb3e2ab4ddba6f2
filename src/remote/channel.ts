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

/**
 * A ping every 10 s; the connection is given up if its answer takes 20 s. A
 * server that exits or crashes closes the connection (noticed at once); one
 * that hangs is noticed by every call's own deadline (5 s for most). The
 * timeout is generous because a busy machine can stall either process's event
 * loop for seconds: the answer then sits unread in the socket when the timer
 * fires, and a tight timeout dropped healthy sessions under load (8 clients
 * writing 1 GiB each on 2 loaded cores).
 */
export const KEEPALIVE_TIME_MS = 10_000
export const KEEPALIVE_TIMEOUT_MS = 20_000

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
    'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS,
    'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.initial_reconnect_backoff_ms': 200,
    'grpc.max_reconnect_backoff_ms': 2_000,
    'grpc.enable_retries': 0,
    'grpc-node.flow_control_window': 8 * 1024 * 1024, // reads of 1 MiB without waiting for window updates
    'grpc.use_local_subchannel_pool': 1, // a connection of its own: a session is bound to it
  })
}
