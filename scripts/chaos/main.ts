import { parseArgs } from 'node:util'
import { runChaos, summarize } from './run.ts'

/**
 * `npm run chaos -- --nodes N --duration S --seed K [--netns] [--report FILE] [--failpoints LIST] [--backups S]`
 * One chaos run (scripts/chaos/run.ts); prints the summary, writes the JSON report, exits 1 when
 * the checker fails the run.
 */
const { values } = parseArgs({
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
  },
})
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130))
const seed = Number(values.seed)
const report = await runChaos({
  nodes: Number(values.nodes),
  durationS: Number(values.duration),
  seed,
  netns: values.netns,
  reportPath: values.report ?? `tmp/chaos/report-seed${seed}.json`,
  keepData: values['keep-data'],
  convergeTimeoutS: Number(values['converge-timeout']),
  ...(values.failpoints && { failpoints: values.failpoints }),
  ...(values.backups && { backupEveryMs: Number(values.backups) * 1000 }),
})
console.log(summarize(report))
console.log(`  report         ${values.report ?? `tmp/chaos/report-seed${seed}.json`}`)
process.exit(report.ok ? 0 : 1)
