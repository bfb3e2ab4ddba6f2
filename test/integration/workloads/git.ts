// git as a developer uses it: init, add, commit, edit, commit, checkout.
import { appendFile, chmod, cp, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { assert } from 'chai';
import { childEnv, runOk } from '../../helpers/exec.js';
import { assertSameManifest, treeManifest } from '../../helpers/tree-manifest.js';
import type { Workload } from './types.js';

export const gitWorkload: Workload = {
  name: 'git init, add, commit, checkout',
  async run(root, { fixtures, scratch }) {
    const repo = join(root, 'repo');
    await mkdir(repo);
    // About 100 headers: the linux/ part of the fixture without netfilter/.
    await cp(join(fixtures.tree, 'linux'), join(repo, 'include'), { recursive: true, filter: (src) => !src.includes('/netfilter') });
    await writeFile(join(repo, 'README'), 'a repository on the file system under test\n');
    const env = childEnv({
      HOME: scratch,
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
      GIT_AUTHOR_DATE: '2001-02-03T04:05:06Z',
      GIT_COMMITTER_DATE: '2001-02-03T04:05:06Z',
    });
    const ident = ['-c', 'user.name=Conformance Test', '-c', 'user.email=test@example.invalid', '-c', 'init.defaultBranch=main'];
    const git = (...args: string[]) => runOk('git', [...ident, '-C', repo, ...args], { env });
    const worktree = () => treeManifest(repo, { times: false, exclude: (rel) => rel === '.git' });

    await git('init', '-q');
    await git('add', '-A');
    await git('commit', '-q', '-m', 'import headers');
    const first = await worktree();

    await appendFile(join(repo, 'README'), 'second line\n');
    await rm(join(repo, 'include', 'can.h'));
    await git('mv', 'include/cdrom.h', 'include/cdrom-renamed.h');
    await writeFile(join(repo, 'tool.sh'), '#!/bin/sh\n');
    await chmod(join(repo, 'tool.sh'), 0o755);
    await git('add', '-A');
    await git('commit', '-q', '-m', 'edit, delete, rename, add');
    const second = await worktree();

    await git('checkout', '-q', 'HEAD~1');
    assertSameManifest(await worktree(), first, 'checkout of the first commit restores its tree');
    await git('checkout', '-q', 'main');
    assertSameManifest(await worktree(), second, 'checkout back to main restores the second tree');

    await git('fsck', '--full', '--strict', '--no-progress');
    assert.strictEqual((await git('status', '--porcelain', '--untracked-files=all')).stdout, '', 'git status must be clean');
    const heads = (await git('rev-parse', 'HEAD', 'HEAD~1')).stdout;
    const tree = (await git('ls-tree', '-r', 'HEAD')).stdout;
    // Everything in .git except the index (which caches inode numbers and ctimes).
    const store = await treeManifest(join(repo, '.git'), { times: false, exclude: (rel) => rel === 'index' });
    return `commits:\n${heads}tree:\n${tree}worktree:\n${second}.git:\n${store}`;
  },
};
