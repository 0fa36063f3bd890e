import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { repoRoot } from '../lib/daemon-launcher.ts'
import { runEntry, UsageError } from '../lib/run-entry.ts'
import { runSoak, summarizeSoak, svgPathOf, type SoakOptions } from './run.ts'

/**
 * `npm run soak -- --minutes 60` (docs/operations.md, Soak test): runs the soak, prints PASS,
 * FAIL or NOT JUDGED per target, writes the results JSON and the plot; exits 1 when a target
 * fails, 2 on a bad option (one line, with the usage).
 */
const USAGE = `usage: npm run soak -- [options]
  --minutes M     length of the load (default 60); faults, backups and samples keep their
                  number and come faster in a shorter run; the growth and compaction targets
                  are judged from 30 minutes on
  --seed K        seed of the workload and of the partitions' sides (default 1)
  --netns         partitions by network namespaces and nftables (root; refused where it
                  cannot run); default: netns where it can run, else loopback
  --loopback      no network namespaces: a SIGSTOP of one node stands in for each partition
  --out FILE      results JSON (default bench/results/<time>-soak.json; the plot is <FILE>.svg)
  --keep-data     keep the daemons' data dirs afterwards (kept anyway when a target fails)
  --data-root DIR where the run's data dir goes (default: the OS temp dir)`

function options(): SoakOptions | 'help' {
  let values
  try {
    ;({ values } = parseArgs({
      options: {
        minutes: { type: 'string', default: '60' },
        seed: { type: 'string', default: '1' },
        netns: { type: 'boolean', default: false },
        loopback: { type: 'boolean', default: false },
        out: { type: 'string' },
        'keep-data': { type: 'boolean', default: false },
        'data-root': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }))
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
  if (values.help) return 'help'
  const minutes = Number(values.minutes)
  if (!Number.isFinite(minutes) || minutes < 1) throw new UsageError(`--minutes takes a number of at least 1, got ${JSON.stringify(values.minutes)}`)
  const seed = Number(values.seed)
  if (!Number.isSafeInteger(seed) || seed < 0) throw new UsageError(`--seed takes a non-negative integer, got ${JSON.stringify(values.seed)}`)
  if (values.netns && values.loopback) throw new UsageError('--netns and --loopback exclude each other')
  const stamp = new Date().toISOString().replace(/:/g, '-')
  return {
    minutes,
    seed,
    mode: values.netns ? 'netns' : values.loopback ? 'loopback' : 'auto',
    outPath: values.out ?? join(repoRoot, 'bench', 'results', `${stamp}-soak.json`),
    keepData: values['keep-data'],
    ...(values['data-root'] !== undefined && { dataRoot: values['data-root'] }),
  }
}

await runEntry({
  name: 'soak',
  usage: USAGE,
  options,
  run: runSoak,
  summary: (report, chosen) => `${summarizeSoak(report)}\n  results    ${chosen.outPath}\n  plot       ${svgPathOf(chosen.outPath)}`,
})
