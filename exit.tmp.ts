import {Connection} from './src/remote/connection.ts'
import {RemoteVolume} from './src/remote/remote-volume.ts'
import {loadOrCreateIdentity} from './src/app/identity.ts'
const conn = new Connection({server: '127.0.0.1:18765', volume: 'vol1', identity: loadOrCreateIdentity(), knownServersFile: '/tmp/sv/cfg-server/known-servers.json'})
await conn.connect()
const v = new RemoteVolume(conn)
await v.getattr('/')
await v.close()
setTimeout(() => { console.log('still alive', (process as any)._getActiveHandles().map((h: any) => h.constructor.name), (process as any).getActiveResourcesInfo()) }, 3000).unref()
