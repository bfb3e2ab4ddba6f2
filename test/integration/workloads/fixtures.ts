// Builds the shared inputs of the workloads once, on a plain directory.
import { randomBytes } from 'node:crypto';
import { appendFile, chmod, chown, cp, link, mkdir, open, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runOk } from '../../helpers/exec.js';
import { treeManifest } from '../../helpers/tree-manifest.js';
import type { Fixtures } from './types.js';

const INCLUDE = '/usr/include/linux';

async function sourceSubset(dst: string): Promise<void> {
  const all = await readdir(INCLUDE).catch(() => {
    throw new Error(`${INCLUDE} is needed as workload input (install linux-libc-dev)`);
  });
  await mkdir(dst);
  for (const name of all.filter((n) => /^[a-c]/.test(n) || n === 'netfilter')) {
    await cp(join(INCLUDE, name), join(dst, name), { recursive: true });
  }
}

async function extras(dir: string): Promise<void> {
  await mkdir(join(dir, 'empty-dir'));
  await writeFile(join(dir, 'run.sh'), '#!/bin/sh\necho hi\n');
  await chmod(join(dir, 'run.sh'), 0o755);
  await writeFile(join(dir, 'private'), 'nobody only\n');
  await chown(join(dir, 'private'), 65534, 65534);
  await chmod(join(dir, 'private'), 0o600);
  await mkdir(join(dir, 'team'));
  await chown(join(dir, 'team'), 0, 4242);
  await chmod(join(dir, 'team'), 0o2775);
  await writeFile(join(dir, 'team', 'notes'), 'group work\n');
  await chown(join(dir, 'team', 'notes'), 1000, 4242);
  await writeFile(join(dir, 'hard-a'), 'linked twice\n');
  await link(join(dir, 'hard-a'), join(dir, 'hard-b'));
  await symlink('linux/can.h', join(dir, 'link-rel'));
  await symlink('does/not/exist', join(dir, 'link-dangling'));
  await writeFile(join(dir, 'name with spaces – ünï.txt'), 'odd name\n');
  await writeFile(join(dir, 'random.bin'), randomBytes(3 * 1024 * 1024 + 17));
  const sparse = await open(join(dir, 'sparse.img'), 'w');
  await sparse.write(Buffer.from('end of sparse file'), 0, 18, 8 * 1024 * 1024);
  await sparse.close();
  await writeFile(join(dir, 'tagged'), 'has xattrs\n');
  await runOk('setfattr', ['-n', 'user.comment', '-v', 'workload fixture', join(dir, 'tagged')]);
  await runOk('setfattr', ['-n', 'user.bin', '-v', '0x0001ff', join(dir, 'tagged')]);
  await runOk('mkfifo', ['-m', '0620', join(dir, 'pipe')]);
}

export async function buildFixtures(base: string): Promise<Fixtures> {
  const tree = join(base, 'tree');
  await mkdir(tree);
  await chmod(tree, 0o750);
  await sourceSubset(join(tree, 'linux'));
  await extras(tree);

  const tarball = join(base, 'tree.tar');
  await runOk('tar', ['--format=posix', '--xattrs', '--xattrs-include=user.*', '--numeric-owner', '-C', tree, '-cf', tarball, '.']);

  const treeV2 = join(base, 'tree-v2');
  await runOk('cp', ['-a', tree, treeV2]);
  await appendFile(join(treeV2, 'linux', 'can.h'), '/* edited */\n');
  await rm(join(treeV2, 'linux', 'netfilter'), { recursive: true });
  await writeFile(join(treeV2, 'linux', 'new-header.h'), '#define NEW 1\n');
  await chmod(join(treeV2, 'run.sh'), 0o700);
  const rnd = await open(join(treeV2, 'random.bin'), 'r+');
  await rnd.write(Buffer.from('patched in the middle'), 0, 21, 1_500_000);
  await rnd.close();
  // Same size as before, so give it a different second: rsync's quick check
  // compares whole-second mtimes by default.
  await runOk('touch', ['-d', '2030-01-02 03:04:05.678901234 UTC', join(treeV2, 'random.bin')]);

  return {
    tree,
    treeV2,
    tarball,
    treeManifest: await treeManifest(tree, { xattrs: true }),
    treeV2Manifest: await treeManifest(treeV2, { xattrs: true }),
  };
}
