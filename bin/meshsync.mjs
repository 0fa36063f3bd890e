#!/usr/bin/env node
// Plain JavaScript on purpose: this file must run (and explain itself) on any Node version.
const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 18) || !process.features?.typescript) {
  console.error(
    `meshsync: Node.js ${process.versions.node} is too old; meshsync needs Node.js >= 22.18 ` +
      '(run it through npm scripts, which use the pinned Node 24, or install Node 24).',
  )
  process.exit(1)
}
if (process.argv[2] === 'start') {
  const { applyDaemonV8Flags } = await import('./daemon-v8-flags.mjs')
  applyDaemonV8Flags()
}
// V8's compiled code of every module (meshsync's and its dependencies') is cached on disk (in
// os.tmpdir()/node-compile-cache, or NODE_COMPILE_CACHE; NODE_DISABLE_COMPILE_CACHE=1 turns it
// off): loading them takes about half the CPU on later starts, which a restart after a crash or
// an upgrade waits on.
const { enableCompileCache, flushCompileCache } = await import('node:module')
enableCompileCache?.()
const { main } = await import('../daemon/cli/main.ts')
// Written now rather than at exit: a daemon usually ends by a signal, or by kill -9.
flushCompileCache?.()
await main(process.argv)
