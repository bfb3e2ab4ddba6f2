/**
 * Memory settings for a process that streams large messages (`serve`,
 * `join`). Each 256 KiB-1 MiB message passes through a few buffers of its
 * size (gRPC's framing, the TLS layer, a reassembled message); glibc maps
 * every block of 128 KiB or more afresh and unmaps it when it is freed, so
 * each of those buffers was new memory that the kernel faulted in and zeroed
 * page by page: measured here, copying 1 GiB into fresh 256 KiB buffers took
 * 1.5-2.5 s, and 0.3-0.5 s with these settings (13 ms into one reused
 * buffer). Blocks below MMAP_THRESHOLD come from the heap, whose free top is
 * kept up to TRIM_THRESHOLD (plus TOP_PAD when it grows): at most about 48
 * MiB that stays with the process once a stream ends.
 */
import {sys} from '../volume/sys.js'

export const MMAP_THRESHOLD = 2 * 1024 * 1024
export const TRIM_THRESHOLD = 32 * 1024 * 1024
export const TOP_PAD = 16 * 1024 * 1024

/** The variables with which glibc takes these settings from the environment (which then wins). */
const ENV = ['MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'MALLOC_TOP_PAD_']

/** Applies the settings unless the environment gives any of them; true if applied. */
export function tuneMallocForStreams(env: NodeJS.ProcessEnv = process.env): boolean {
  if (ENV.some(name => env[name] !== undefined)) return false
  return sys.tuneMalloc(MMAP_THRESHOLD, TRIM_THRESHOLD, TOP_PAD)
}
