#!/usr/bin/env node
// Builds native/ (PacioFS's own small syscall addon) with the node-gyp that
// ships inside npm. Run by `npm ci` (postinstall); quick and idempotent.
import {execFileSync} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const dir = path.join(root, 'native')
const out = path.join(dir, 'build', 'Release', 'paciofs_sys.node')
const src = path.join(dir, 'sys.c')

if (fs.existsSync(out) && fs.statSync(out).mtimeMs >= fs.statSync(src).mtimeMs) process.exit(0)

function nodeGyp() {
  const candidates = []
  if (process.env.npm_execpath) candidates.push(path.join(path.dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'))
  candidates.push(path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'))
  const found = candidates.find(c => fs.existsSync(c))
  if (!found) {
    console.error('paciofs: cannot find node-gyp (it ships with npm); install it with `npm install -g node-gyp`')
    process.exit(1)
  }
  return found
}

try {
  // Build against the installed Node headers when present (no download needed).
  const args = [nodeGyp(), 'rebuild', '--loglevel=warn']
  if (!process.env.npm_config_nodedir && fs.existsSync('/usr/include/node/node_api.h')) args.push('--nodedir=/usr')
  execFileSync(process.execPath, args, {cwd: dir, stdio: ['ignore', 'ignore', 'inherit']})
} catch {
  console.error('paciofs: building native/ failed; it needs g++, make and python3 (`apt-get install -y g++ make python3`)')
  process.exit(1)
}
