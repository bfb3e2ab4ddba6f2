// Copy tools as people use them: cp -a, tar x, rsync.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { assert } from 'chai';
import { runOk } from '../../helpers/exec.js';
import { assertSameManifest, treeManifest } from '../../helpers/tree-manifest.js';
import type { Workload } from './types.js';

export const copyWorkloads: Workload[] = [
  {
    name: 'cp -a of a source tree',
    async run(root, { fixtures }) {
      const dst = join(root, 'copy');
      await runOk('cp', ['-a', fixtures.tree, dst]);
      const got = await treeManifest(dst, { xattrs: true });
      assertSameManifest(got, fixtures.treeManifest, 'cp -a result (content, modes, owners, ns mtimes, links, xattrs) differs from its source');
      return got;
    },
  },
  {
    name: 'tar x of a pax tarball',
    async run(root, { fixtures }) {
      const dst = join(root, 'extracted');
      await mkdir(dst);
      await runOk('tar', ['--xattrs', '--xattrs-include=user.*', '--same-owner', '-xpf', fixtures.tarball, '-C', dst]);
      const got = await treeManifest(dst, { xattrs: true });
      assertSameManifest(got, fixtures.treeManifest, 'extracted tree differs from the tree that was archived');
      const listing = await runOk('tar', ['-tf', fixtures.tarball]);
      const check = await runOk('tar', ['--compare', '-f', fixtures.tarball, '-C', dst]);
      assert.strictEqual(check.stdout, '', 'tar --compare reports differences');
      return `${got}entries=${listing.stdout.split('\n').length}\n`;
    },
  },
  {
    name: 'rsync -aHX then an incremental rsync --delete',
    async run(root, { fixtures }) {
      // -a as people use it, plus -H and -X because the tree has hard links
      // and user xattrs that -a alone deliberately drops.
      const dst = join(root, 'mirror');
      await runOk('rsync', ['-aHX', `${fixtures.tree}/`, `${dst}/`]);
      const first = await treeManifest(dst, { xattrs: true });
      assertSameManifest(first, fixtures.treeManifest, 'first rsync result differs from its source');
      // --no-whole-file forces the delta algorithm (temp file + rename) even locally.
      await runOk('rsync', ['-aHX', '--delete', '--no-whole-file', `${fixtures.treeV2}/`, `${dst}/`]);
      const second = await treeManifest(dst, { xattrs: true });
      assertSameManifest(second, fixtures.treeV2Manifest, 'incremental rsync result differs from the edited source');
      const dry = await runOk('rsync', ['-aHXn', '--delete', '--checksum', '--itemize-changes', `${fixtures.treeV2}/`, `${dst}/`]);
      assert.strictEqual(dry.stdout, '', 'a checksum dry run still finds differences');
      return second;
    },
  },
];
