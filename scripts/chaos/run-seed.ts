import { runChaos, type ChaosOptions } from './run.ts'

/**
 * One chaos run in a process of its own, for the campaign's parallel runs:
 * `node scripts/chaos/run-seed.ts '<ChaosOptions as JSON, with reportPath>'`. The report goes to
 * `reportPath`; the exit code is 0 when the run passed, 1 when it failed, 2 on bad options.
 *
 * Runs that shared one process starved each other: the checker's pass over a run's history is
 * synchronous (a minute or more on a loaded machine for ~80,000 operations), and meanwhile the
 * other run's requests timed out with their answers waiting, unread, in the socket.
 */
let options: ChaosOptions
try {
  options = JSON.parse(process.argv[2] ?? '') as ChaosOptions
  if (typeof options.reportPath !== 'string') throw new Error('reportPath is required')
} catch (error) {
  console.error(`run-seed: bad options: ${(error as Error).message}`)
  process.exit(2)
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130))
const report = await runChaos({ ...options, log: () => undefined })
process.exit(report.ok ? 0 : 1)
