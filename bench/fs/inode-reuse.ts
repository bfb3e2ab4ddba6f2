/**
 * ext4 without a journal does not hand out an inode number freed in the last
 * 60 s (300 s more while its inode table block is still dirty): to allocate
 * one, the kernel walks the group's free inodes from the start and looks up
 * each recently freed one's inode table block to read its deletion time
 * (fs/ext4/ialloc.c, recently_deleted(), only when the file system has no
 * journal). So every create pays for every inode freed in its block group in
 * the last minute: on this machine bindfs created 2,983 files/s in a quiet
 * group and 818/s right after 20,000 files had been created and unlinked on
 * the disk. The metadata benchmark unlinks 10,000 files per target, and the
 * targets share a group, so without a pause each target would start with the
 * previous targets' deletions in its way and the last one (PacioFS) would pay
 * for both. This module finds out whether a directory's file system is like
 * that, so the benchmark can let that window pass between targets.
 */
import {readFileSync, readlinkSync, statSync} from 'node:fs'
import {basename} from 'node:path'

/** RECENTCY_MIN of fs/ext4/ialloc.c, and a margin for the clock's coarse seconds. */
export const EXT4_REUSE_DELAY_MS = 62_000

/** The kernel's name of the block device holding path ('vda', 'sda1'), or undefined. */
export function blockDeviceOf(path: string): string | undefined {
  const dev = statSync(path, {bigint: true}).dev
  // glibc's dev_t (gnu_dev_major / gnu_dev_minor)
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn))
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & 0xffffff00n))
  try {
    return basename(readlinkSync(`/sys/dev/block/${major}:${minor}`))
  } catch {
    return undefined
  }
}

/**
 * How long an inode freed in path's file system stays out of reuse, in ms:
 * EXT4_REUSE_DELAY_MS on ext4 without a journal (its /sys/fs/ext4/DEV/journal_task
 * says `<none>`), 0 elsewhere or when it cannot tell. `sysfs` is for tests.
 */
export function inodeReuseDelayMs(path: string, sysfs = '/sys/fs/ext4'): number {
  const dev = blockDeviceOf(path)
  if (dev === undefined) return 0
  try {
    return readFileSync(`${sysfs}/${dev}/journal_task`, 'utf8').trim() === '<none>' ? EXT4_REUSE_DELAY_MS : 0
  } catch {
    return 0 // not ext4, or a kernel without the file
  }
}
