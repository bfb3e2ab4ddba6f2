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

/**
 * Removes a tree. A FUSE release is asynchronous, so a just-closed file may
 * linger briefly (libfuse's .fuse_hidden*) and rmdir see ENOTEMPTY: retry the
 * whole removal a few times. (rm's own maxRetries retries at every level of
 * the tree, which is exponential in its depth when removal keeps failing.)
 */
export async function removeTree(path: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await rm(path, { recursive: true, force: true });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOTEMPTY' || attempt >= 4) throw e;
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
}

export function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40) || 'x';
}
