import { parseArgs } from 'node:util'
import { percentiles, runChaos, summarize, type ChaosReport } from './run.ts'

/**
 * The long campaign (not run in CI): `node scripts/chaos/campaign.ts [--seeds 50] [--first 1]
 * [--nodes 5] [--duration 600] [--netns] [--parallel 1]`. One chaos run per seed; prints a table
 * (writes, faults, lost, convergence, memory) and writes tmp/chaos/campaign.json. Exits 1 if any
 * run failed; each failing seed reproduces with `npm run chaos -- --seed K ...`.
 */
const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '50' },
    first: { type: 'string', default: '1' },
    nodes: { type: 'string', default: '5' },
    duration: { type: 'string', default: '600' },
    netns: { type: 'boolean', default: false },
    parallel: { type: 'string', default: '1' },
  },
})
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130))
const seeds = Array.from({ length: Number(values.seeds) }, (_, i) => Number(values.first) + i)
const reports: ChaosReport[] = []
const queue = [...seeds]
const worker = async (): Promise<void> => {
  for (let seed = queue.shift(); seed !== undefined; seed = queue.shift()) {
    const report = await runChaos({
      nodes: Number(values.nodes),
      durationS: Number(values.duration),
      seed,
      netns: values.netns,
      reportPath: `tmp/chaos/campaign/seed${seed}.json`,
      // Longer runs: more faults (>= 30 in 10 minutes), up to 12 s each.
      faultMs: [2_000, 12_000],
      log: () => undefined,
    })
    reports.push(report)
    console.log(`${row(report)}${report.ok ? '' : `\n${summarize(report)}`}`)
  }
}

function row(r: ChaosReport): string {
  const c = r.convergence
  const maxRss = Math.max(0, ...r.resources.map((x) => x.maxRssMB))
  const maxFds = Math.max(0, ...r.resources.map((x) => x.maxFds))
  return [
    String(r.seed).padStart(5),
    (r.ok ? 'PASS' : 'FAIL').padEnd(5),
    String(r.workload.acknowledged).padStart(8),
    String(r.faults.length).padStart(7),
    String(r.check?.lost ?? '?').padStart(5),
    (r.check?.divergent ? 'yes' : 'no').padStart(8),
    String(c.afterHeal.p50).padStart(9),
    String(c.afterHeal.p99).padStart(9),
    String(c.finalMs ?? 'never').padStart(9),
    String(maxRss).padStart(8),
    String(maxFds).padStart(6),
  ].join(' ')
}

console.log(`campaign: ${seeds.length} seeds x ${values.nodes} nodes x ${values.duration} s (${values.netns ? 'netns' : 'loopback'})`)
console.log(' seed result    acked  faults  lost diverged heal p50  heal p99  final ms  rss MB   fds')
await Promise.all(Array.from({ length: Math.max(1, Number(values.parallel)) }, worker))
const failed = reports.filter((r) => !r.ok)
const finals = reports.flatMap((r) => (r.convergence.finalMs !== undefined ? [r.convergence.finalMs] : []))
const f = percentiles(finals)
const totals = {
  runs: reports.length,
  failed: failed.map((r) => r.seed),
  acknowledged: reports.reduce((a, r) => a + r.workload.acknowledged, 0),
  faults: reports.reduce((a, r) => a + r.faults.length, 0),
  lost: reports.reduce((a, r) => a + (r.check?.lost ?? 0), 0),
  finalConvergeMs: f,
}
console.log(`total: ${totals.runs} runs, ${totals.failed.length} failed ${JSON.stringify(totals.failed)}, ${totals.acknowledged} acknowledged writes, ${totals.faults} faults, ${totals.lost} lost; final convergence p50 ${f.p50} / p99 ${f.p99} / max ${f.max} ms`)
const { writeFile, mkdir } = await import('node:fs/promises')
await mkdir('tmp/chaos', { recursive: true })
await writeFile('tmp/chaos/campaign.json', `${JSON.stringify({ totals, runs: reports.map((r) => ({ seed: r.seed, ok: r.ok, failures: r.failures, acknowledged: r.workload.acknowledged, faults: r.faults.length, faultsByKind: r.faultsByKind, lost: r.check?.lost, convergence: r.convergence, resources: r.resources })) }, null, 2)}\n`)
process.exit(failed.length > 0 ? 1 : 0)
