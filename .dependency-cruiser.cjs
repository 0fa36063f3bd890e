/** Layering of docs/architecture.md (Layers), checked in CI. */
module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },
    {
      name: 'crdt-is-pure',
      comment: 'crdt/ is the pure model: it may import yjs, lib0 and itself, nothing else.',
      severity: 'error',
      from: { path: '^crdt/' },
      to: { pathNot: ['^crdt/', 'node_modules/(yjs|lib0)/'] },
    },
    {
      name: 'transport-not-daemon',
      comment: 'transport/ moves bytes; it may import crdt and libp2p, never daemon/ or scripts/.',
      severity: 'error',
      from: { path: '^transport/' },
      to: { path: ['^daemon/', '^scripts/'] },
    },
    {
      name: 'nothing-imports-daemon',
      severity: 'error',
      from: { path: ['^crdt/', '^transport/'] },
      to: { path: '^daemon/' },
    },
    {
      name: 'product-never-imports-scripts-or-tests',
      severity: 'error',
      from: { path: ['^crdt/', '^transport/', '^daemon/'] },
      to: { path: ['^scripts/', '^test/'] },
    },
    {
      name: 'scripts-never-import-tests',
      comment: 'scripts/ (bench, chaos, demo) stand on their own; tests may import scripts/, never the other way round.',
      severity: 'error',
      from: { path: '^scripts/' },
      to: { path: '^test/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Peer systems the benchmarks install into folders of their own (not meshsync's dependencies).
    exclude: { path: '^scripts/bench/peers/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.mjs', '.cjs', '.json'] },
  },
}
