import { NetnsUnavailableError } from '../chaos/run.ts'

/** A bad option of a run script: one line, then the usage, exit code 2. */
export class UsageError extends Error {}

/**
 * The entry of a long run script (`npm run chaos`, `npm run soak`): reads the options (a
 * {@link UsageError} is one line plus the usage, exit 2; `help` prints the usage), ends the process
 * on SIGINT/SIGTERM (the run's exit handler then kills its daemons and removes what it made),
 * runs it (a run that needs network namespaces where there are none is one line, exit 2), prints
 * its summary and exits 0 when it passed, 1 when it did not.
 */
export async function runEntry<O, R extends { readonly ok: boolean }>(entry: {
  readonly name: string
  readonly usage: string
  readonly options: () => O | 'help'
  readonly run: (options: O) => Promise<R>
  readonly summary: (report: R, options: O) => string
}): Promise<never> {
  let chosen: O | 'help'
  try {
    chosen = entry.options()
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    console.error(`${entry.name}: ${error.message}\n${entry.usage}`)
    process.exit(2)
  }
  if (chosen === 'help') {
    console.log(entry.usage)
    process.exit(0)
  }
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130))
  let report: R
  try {
    report = await entry.run(chosen)
  } catch (error) {
    if (!(error instanceof NetnsUnavailableError)) throw error
    console.error(`${entry.name}: ${error.message}`)
    process.exit(2)
  }
  console.log(entry.summary(report, chosen))
  process.exit(report.ok ? 0 : 1)
}
