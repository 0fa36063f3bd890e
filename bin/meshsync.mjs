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
const { main } = await import('../daemon/cli/main.ts')
await main(process.argv)
