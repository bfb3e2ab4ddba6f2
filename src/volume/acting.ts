/**
 * The member on whose behalf an operation runs. A local mount acts as the
 * volume's own user; a server runs each client's operations inside
 * `actingAs(member, ...)`, so every record they cause (including the content
 * digest recorded when the client's file is released) names that member.
 * Records made outside any operation (a periodic digest of a file left open)
 * name the opening user, as before.
 */
import {AsyncLocalStorage} from 'node:async_hooks'

const acting = new AsyncLocalStorage<string>()

export function actingAs<T>(member: string, work: () => T): T {
  return acting.run(member, work)
}

export function actingMember(): string | undefined {
  return acting.getStore()
}
