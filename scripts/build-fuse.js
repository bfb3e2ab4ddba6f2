#!/usr/bin/env node
// postinstall: apply patches/fuse-native+2.2.6.patch and rebuild fuse-native
// from source against the system libfuse2 (pkg-config fuse), so that
// node-gyp-build loads node_modules/fuse-native/build/Release/fuse.node instead
// of the stock prebuild. Idempotent and quick: the compile is skipped when the
// existing build was made from the same sources.
import {execFileSync, spawnSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import fs from 'node:fs'
import {createRequire} from 'node:module'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const require = createRequire(path.join(root, 'package.json'))
const PATCH = path.join(root, 'patches', 'fuse-native+2.2.6.patch')
const APT_HINT = 'apt-get install -y libfuse-dev pkg-config'

function fail(msg) {
  console.error(`build-fuse: ${msg}`)
  process.exit(1)
}

function tryResolve(id) {
  try {
    return require.resolve(id)
  } catch {
    return null
  }
}

const pkgJson = tryResolve('fuse-native/package.json')
if (!pkgJson) process.exit(0) // fuse-native not installed: nothing to build
const dir = path.dirname(pkgJson)

// 1. System libfuse2 headers and pkg-config are required for the build.
const pc = spawnSync('pkg-config', ['--exists', 'fuse'], {stdio: 'ignore'})
if (pc.error || pc.status !== 0) fail(`libfuse2 development files not found via pkg-config; run: ${APT_HINT}`)

// 2. Apply the patch (idempotent: patch-package skips an applied patch).
const patchPackage = tryResolve('patch-package/index.js')
if (patchPackage) {
  const r = spawnSync(process.execPath, [patchPackage, '--error-on-fail'], {cwd: root, encoding: 'utf8'})
  if (r.status !== 0) fail(`patch-package failed (if node_modules/fuse-native carries an older version of the patch, reinstall it: rm -rf node_modules && npm ci):\n${r.stdout}${r.stderr}`)
} else {
  // Installs without devDependencies: apply with patch(1) unless already applied.
  const patch = (args) => spawnSync('patch', ['-p1', '-s', '-f', ...args, '-i', PATCH], {cwd: root, encoding: 'utf8'})
  if (patch(['-R', '--dry-run']).status !== 0) {
    const r = patch(['-N', '--no-backup-if-mismatch'])
    if (r.status !== 0) fail(`applying ${path.relative(root, PATCH)} failed:\n${r.stdout}${r.stderr}`)
  }
}

// 3. Rebuild unless build/Release/fuse.node was made from these exact sources.
const out = path.join(dir, 'build', 'Release', 'fuse.node')
const stampFile = path.join(dir, 'build', 'paciofs-build.stamp')
const hash = createHash('sha256')
for (const f of ['fuse-native.c', 'passthrough.h', 'fastcreate.h', 'bigchan.h', 'semaphore.h', 'binding.gyp']) hash.update(fs.readFileSync(path.join(dir, f)))
hash.update(execFileSync('pkg-config', ['--modversion', '--cflags', '--libs', 'fuse'], {encoding: 'utf8'}))
hash.update(`${process.platform}-${process.arch}`)
const stamp = hash.digest('hex')
const built = () => fs.existsSync(out) && fs.existsSync(stampFile) && fs.readFileSync(stampFile, 'utf8') === stamp

function findNodeGyp() {
  const candidates = [process.env.npm_config_node_gyp]
  if (process.env.npm_execpath) {
    candidates.push(path.join(path.dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'))
  }
  const prefix = path.dirname(path.dirname(process.execPath))
  candidates.push(path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'))
  candidates.push(path.join(prefix, 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')) // Windows-style layout
  candidates.push(tryResolve('node-gyp/bin/node-gyp.js'))
  return candidates.find((c) => c && c.endsWith('.js') && fs.existsSync(c)) ?? null
}

if (!built()) {
  const nodeGyp = findNodeGyp()
  if (!nodeGyp) fail('node-gyp not found (it ships with npm); install npm or run: npm install -g node-gyp')
  const args = [nodeGyp, 'rebuild', '--loglevel=warn']
  // Use the installed Node headers when present: no header download.
  const prefix = path.dirname(path.dirname(process.execPath))
  if (!process.env.npm_config_nodedir && fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) {
    args.push(`--nodedir=${prefix}`)
  }
  const r = spawnSync(process.execPath, args, {cwd: dir, encoding: 'utf8'})
  if (r.status !== 0) {
    fail(`node-gyp rebuild of fuse-native failed (needs ${APT_HINT} g++ make python3):\n${r.stdout}${r.stderr}`)
  }
  fs.writeFileSync(stampFile, stamp)
}

// 4. Check that fuse-native now loads the patched build, not the prebuild.
const check = spawnSync(
  process.execPath,
  ['-e', 'const b = require("node-gyp-build")(process.argv[1]); process.exit(typeof b.fuse_native_get_context === "function" && typeof b.fuse_native_pt_attach === "function" ? 0 : 3)', dir],
  {cwd: dir, encoding: 'utf8'},
)
if (check.status !== 0) fail(`fuse-native does not load the patched build ${path.relative(root, out)}:\n${check.stderr}`)
