/**
 * The gRPC server: TLS with the server's own certificate, message size
 * limits, keepalive (a vanished client's session ends within seconds), and
 * an orderly stop: refuse new calls, let running ones finish, end the
 * sessions (their open files are released and recorded), stop listening.
 */
import * as grpc from '@grpc/grpc-js'
import {PacioError} from '../errors.js'
import {MAX_MESSAGE, serviceDefinition} from '../remote/wire.js'
import type {ServedVolume} from './served.js'
import type {ReplicaHost} from '../replica/host.js'
import {ReplicaService} from '../replica/service.js'
import {replicaDefinition} from '../replica/wire.js'
import {startDataServer, type DataServer} from './data-server.js'
import {VolumeService} from './service.js'
import type {ServerTls} from './tls.js'

export interface ServerOptions {
  host: string
  port: number
  tls: ServerTls
  volumes: Map<string, ServedVolume>
  /** volumes this server holds for replica servers (paciofs.v1.Replica), by name */
  replicaHosts?: Map<string, ReplicaHost>
  maxHandles: number
  /** the data channel's port (protocol 3), told to clients in their session: 0 or undefined any free one, false none */
  dataPort?: number | false
  onEvent?(message: string): void
}

export interface RunningServer {
  port: number
  /** the data channel's port, 0 if there is none */
  dataPort: number
  service: VolumeService
  replicas?: ReplicaService
  /** Drains and stops; resolves when every session has ended. */
  stop(): Promise<void>
}

export const SERVER_CHANNEL_OPTIONS = {
  'grpc.max_receive_message_length': MAX_MESSAGE,
  'grpc.max_send_message_length': MAX_MESSAGE,
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 20_000, // a stalled (busy) client is not a gone one: see remote/channel.ts
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.http2.min_ping_interval_without_data_ms': 1_000,
  'grpc.max_concurrent_streams': 256,
}

/** HTTP/2 flow-control window for the server's receiving side (a 1 MiB write fits several times). */
export const FLOW_WINDOW = 8 * 1024 * 1024

/**
 * grpc-js (1.14) has no option for the server's HTTP/2 windows (its client
 * has 'grpc-node.flow_control_window'); with the default 64 KiB every 1 MiB
 * write waits for 16 window updates. Nor does it disable Nagle's algorithm on
 * accepted sockets (its client does). Its server passes `commonServerOptions`
 * to http2.createSecureServer: set the streams' initial window and noDelay
 * there. If a later grpc-js moves that field, this does nothing and only
 * speed suffers.
 */
function widenFlowControlWindow(server: grpc.Server): void {
  const common = (server as unknown as {commonServerOptions?: {settings?: Record<string, unknown>; noDelay?: boolean}}).commonServerOptions
  if (!common) return
  common.settings = {...common.settings, initialWindowSize: FLOW_WINDOW}
  common.noDelay = true // small answers leave at once (Nagle + delayed ACK cost 40 ms per call)
}

/**
 * The connection's own window (HTTP/2 keeps one per stream and one per
 * connection; SETTINGS only set the first) stays at 64 KiB unless the
 * receiver raises it: then a client can send only 64 KiB per round trip,
 * whatever the streams' windows. Raised on every session of the server's
 * HTTP/2 listeners (grpc-js keeps them in `http2Servers`; if it stops, this
 * does nothing and only upload speed suffers).
 */
function widenConnectionWindow(server: grpc.Server): void {
  const listeners = (server as unknown as {http2Servers?: Map<{on(ev: 'session', fn: (s: {setLocalWindowSize?(n: number): void}) => void): void}, unknown>}).http2Servers
  for (const l of listeners?.keys() ?? []) {
    l.on('session', session => {
      try {
        session.setLocalWindowSize?.(FLOW_WINDOW)
      } catch { /* an old Node: the default window stays */ }
    })
  }
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const service = new VolumeService({volumes: opts.volumes, fingerprint: opts.tls.fingerprint, maxHandles: opts.maxHandles, onEvent: opts.onEvent})
  const server = new grpc.Server(SERVER_CHANNEL_OPTIONS)
  widenFlowControlWindow(server)
  server.addService(serviceDefinition(), service.handlers())
  const replicas = opts.replicaHosts ? new ReplicaService(opts.replicaHosts, opts.tls.fingerprint, opts.onEvent) : undefined
  if (replicas) server.addService(replicaDefinition(), replicas.handlers())
  const creds = grpc.ServerCredentials.createSsl(null, [{private_key: opts.tls.key, cert_chain: opts.tls.cert}], false)
  const host = opts.host.includes(':') && !opts.host.startsWith('[') ? `[${opts.host}]` : opts.host
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:${opts.port}`, creds, (err, bound) => {
      if (err) {
        reject(new PacioError('EINPUT', `cannot listen on ${host}:${opts.port}: ${err.message}`,
          {suggestion: err.message.includes('EADDRINUSE') || err.message.includes('No address added') ? 'another server uses that port: pick another with --port' : undefined, cause: err}))
      } else {
        resolve(bound)
      }
    })
  })

  widenConnectionWindow(server)
  let data: DataServer | undefined
  if (opts.dataPort !== false) {
    try {
      data = await startDataServer({host: opts.host, port: opts.dataPort ?? 0, tls: opts.tls, service, onEvent: opts.onEvent})
    } catch (error) {
      server.forceShutdown()
      throw new PacioError('EINPUT', `cannot listen on ${host}:${opts.dataPort ?? 0} for the data channel: ${(error as Error).message}`, {cause: error,
        suggestion: 'another program uses that port: pick another with --data-port (0: any free port)'})
    }

    service.dataPort = data.port
  }

  let stopping: Promise<void> | undefined
  return {
    port,
    dataPort: data?.port ?? 0,
    service,
    replicas,
    stop() {
      stopping ??= (async () => {
        service.draining = true
        replicas?.stop()
        await service.quiesce(10_000)
        await service.endAll('server shutting down')
        await data?.close()
        service.stats.write()
        await new Promise<void>(resolve => {
          const t = setTimeout(() => {
            server.forceShutdown()
            resolve()
          }, 2_000)
          server.tryShutdown(() => {
            clearTimeout(t)
            resolve()
          })
        })
      })()
      return stopping
    },
  }
}
