import fs from 'node:fs'

const {O_NOATIME} = fs.constants

/**
 * Opens a file for the volume's own reading (a digest, a capture, verify's
 * hash, a repair's source) with O_NOATIME, so that the reads a user did not
 * make leave its access time alone. O_NOATIME is refused (EPERM) unless the
 * process owns the file or has CAP_FOWNER: then it opens without it.
 */
export function openQuietSync(path: string, flags: number): number {
  try {
    return fs.openSync(path, flags | O_NOATIME)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') throw error
    return fs.openSync(path, flags)
  }
}

/** openQuietSync, off the event loop. */
export async function openQuiet(path: string, flags: number): Promise<fs.promises.FileHandle> {
  try {
    return await fs.promises.open(path, flags | O_NOATIME)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') throw error
    return fs.promises.open(path, flags)
  }
}
