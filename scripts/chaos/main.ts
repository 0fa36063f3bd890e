import { parseArgs } from 'node:util'
import { runEntry, UsageError } from '../lib/run-entry.ts'
import { runChaos, summarize, type ChaosOptions } from './run.ts'

/**
 * One chaos run (scripts/chaos/run.ts); prints the summary, writes the JSON report, exits 1 when
 * the checker fails the run, 2 on a bad option (one line, with the usage).
 */
const USAGE = `usage: npm run chaos -- [options]
  --nodes N              daemons (default 5)
  --duration S           seconds of workload under faults (default 60)
  --seed K               seed of the fault schedule and the workload (default 1)
  --netns                one network namespace per daemon, faults by nftables (root; refused
                         where it cannot run); default loopback
  --report FILE          where the JSON report goes (default tmp/chaos/report-seed<K>.json)
  --failpoints LIST      failpoints planted in every daemon (tests of the checker)
  --keep-data            keep the daemons' data dirs afterwards
  --converge-timeout S   how long the nodes may take to converge at the end (default 120)
  --backups S            a backup through a daemon every S seconds, each verified afterwards`

function positive(value: string, flag: string, integer: boolean): number {
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isSafeInteger(n))) throw new UsageError(`${flag} takes a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(value)}`)
  return n
}

function options(): ChaosOptions | 'help' {
  let values
  try {
    ;({ values } = parseArgs({
      options: {
        nodes: { type: 'string', default: '5' },
        duration: { type: 'string', default: '60' },
        seed: { type: 'string', default: '1' },
        netns: { type: 'boolean', default: false },
        report: { type: 'string' },
        failpoints: { type: 'string' },
        'keep-data': { type: 'boolean', default: false },
        'converge-timeout': { type: 'string', default: '120' },
        backups: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }))
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
  if (values.help) return 'help'
  const seed = Number(values.seed)
  if (!Number.isSafeInteger(seed) || seed < 0) throw new UsageError(`--seed takes a non-negative integer, got ${JSON.stringify(values.seed)}`)
  return {
    nodes: positive(values.nodes, '--nodes', true),
    durationS: positive(values.duration, '--duration', false),
    seed,
    netns: values.netns,
    reportPath: values.report ?? `tmp/chaos/report-seed${seed}.json`,
    keepData: values['keep-data'],
    convergeTimeoutS: positive(values['converge-timeout'], '--converge-timeout', false),
    ...(values.failpoints && { failpoints: values.failpoints }),
    ...(values.backups && { backupEveryMs: positive(values.backups, '--backups', false) * 1000 }),
  }
}

await runEntry({
  name: 'chaos',
  usage: USAGE,
  options,
  run: runChaos,
  summary: (report, chosen) => `${summarize(report)}\n  report         ${chosen.reportPath}`,
})
