#!/usr/bin/env -S node --max-semi-space-size=2
// --max-semi-space-size=2 (MB): V8's young generation otherwise grows to 16 MB
// per semi-space under a mount's steady allocation; capped, a mount creating
// 100,000 files peaked at 146 MB RSS instead of 168 MB, with the same CPU
// time. serve and join start node again without the cap (src/app/relaunch.ts).
// Test helpers and benches start bin/run.js with the same options.
const {relaunchIfServer} = await import('../dist/app/relaunch.js')
relaunchIfServer()
const {execute} = await import('@oclif/core')

await execute({dir: import.meta.url})
