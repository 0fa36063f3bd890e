import { defineConfig } from 'vitest/config'

/**
 * Test tiers, one vitest project each:
 * - unit, integration, e2e: `npm test`, the everyday run (a few minutes on 2 cores);
 * - chaos: `npm run test:chaos` (the netns chaos run, the checker's planted bugs, the fuzzers);
 * - bench: `npm run test:bench` (`npm run bench` end to end at small sizes).
 * `.ci/run` runs all three commands. A path given on the command line still picks files in any
 * tier (`npx vitest run test/unit/store`).
 */
const tiers = {
  unit: 'test/unit/**/*.test.ts',
  integration: 'test/integration/**/*.test.ts',
  e2e: 'test/e2e/**/*.test.ts',
  chaos: 'test/chaos/**/*.test.ts',
  bench: 'test/bench/**/*.test.ts',
}

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['default'],
    // Stops the daemons and removes the temp dirs a test file left, after its own hooks ran.
    setupFiles: ['test/helpers/cleanup.ts'],
    projects: Object.entries(tiers).map(([name, include]) => ({ extends: true, test: { name, include: [include] } })),
  },
})
