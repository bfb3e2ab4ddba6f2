/** How commands turn library errors into one clear line, a suggestion and an exit status. No oclif here. */
import {PacioError} from '../errors.js'

export interface Rendered {
  message: string
  suggestions?: string[]
  exit: number
}

export function renderError(error: unknown, exit = 1): Rendered {
  if (error instanceof PacioError) {
    return {message: error.message, suggestions: error.suggestion ? [error.suggestion] : undefined, exit}
  }

  const e = error as NodeJS.ErrnoException
  if (e?.code && typeof e.message === 'string') return {message: e.message, exit}
  return {message: String((error as Error)?.stack ?? error), exit}
}
