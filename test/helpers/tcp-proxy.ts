// A TCP proxy on loopback that a test can cut (every connection dropped,
// new ones refused) and heal again on the same port: a network partition
// between two servers.
import net from 'node:net'

export interface Proxy {
  readonly address: string
  cut(): Promise<void>
  heal(): Promise<void>
  close(): Promise<void>
}

export async function startProxy(target: {host: string; port: number}): Promise<Proxy> {
  const sockets = new Set<net.Socket>()
  let server: net.Server | undefined
  let port = 0
  const listen = () => new Promise<void>((resolve, reject) => {
    server = net.createServer(client => {
      const upstream = net.connect(target.port, target.host)
      for (const s of [client, upstream]) {
        sockets.add(s)
        s.on('close', () => sockets.delete(s))
        s.on('error', () => {
          client.destroy()
          upstream.destroy()
        })
      }

      client.pipe(upstream)
      upstream.pipe(client)
    })
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => {
      port = (server!.address() as net.AddressInfo).port
      resolve()
    })
  })
  const stop = () => new Promise<void>(resolve => {
    for (const s of sockets) s.destroy()
    sockets.clear()
    if (!server) return resolve()
    server.close(() => resolve())
    server = undefined
  })
  await listen()
  return {
    address: `127.0.0.1:${port}`,
    cut: stop,
    heal: listen,
    close: stop,
  }
}
