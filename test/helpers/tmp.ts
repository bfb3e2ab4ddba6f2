import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A fresh directory under `parent` (default: the OS temp dir), mode 0755 so
 * that unprivileged test users can traverse it.
 */
export async function makeTempDir(label: string, parent: string = tmpdir()): Promise<string> {
  const dir = await mkdtemp(join(parent, `paciofs-${slug(label)}-`));
  await chmod(dir, 0o755);
  return dir;
}

/** Removes a tree; retries briefly because FUSE releases (and hidden files) are asynchronous. */
export async function removeTree(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
}

export function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40) || 'x';
}
