import { spawn, type ChildProcess } from 'node:child_process'
import { readFile, rm } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { campaignRow, campaignTable, CAMPAIGN_HEADER, loadCampaign, runFigures, saveCampaign, type CampaignConfig } from './campaign-file.ts'
import { codeVersion, sameVersion } from './code-version.ts'
import { summarize, type ChaosOptions, type ChaosReport } from './run.ts'

/**
 * The long campaign (not run in CI):
 * `node scripts/chaos/campaign.ts --netns [--seeds 50] [--first 1] [--nodes 5] [--duration 600]
 * [--fault-ms 2000,12000] [--gap-ms 1000,3000] [--clients 2] [--think-ms 15] [--min-faults 30] [--parallel 1]
 * [--out tmp/chaos/campaign.json] [--fresh]`.
 *
 * One chaos run per seed. After every run its figures are added to the results file (`--out`),
 * so an interrupted campaign resumes: seeds already in the file are skipped (the file must hold
 * a campaign with the same settings; `--fresh` starts over). Prints a row per run as it ends and
 * the summary table of every run in the file at the end; each run's full report goes to
 * tmp/chaos/campaign/seed<K>.json (with the operation history and final states when it failed).
 * Exits 1 if any run failed or had fewer than `--min-faults` faults; a failing seed reproduces
 * with `npm run chaos -- --seed K --nodes N --duration S --netns`.
 */
const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '50' },
    first: { type: 'string', default: '1' },
    nodes: { type: 'string', default: '5' },
    duration: { type: 'string', default: '600' },
    netns: { type: 'boolean', default: false },
    'fault-ms': { type: 'string', default: '2000,12000' },
    'gap-ms': { type: 'string', default: '1000,3000' },
    clients: { type: 'string', default: '2' },
    'think-ms': { type: 'string', default: '15' },
    'min-faults': { type: 'string', default: '30' },
    parallel: { type: 'string', default: '1' },
    out: { type: 'string', default: 'tmp/chaos/campaign.json' },
    fresh: { type: 'boolean', default: false },
    'allow-dirty': { type: 'boolean', default: false },
  },
})

const int = (name: string, text: string, min: number): number => {
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, not ${JSON.stringify(text)}`)
  return n
}
const range = (name: string, text: string): [number, number] => {
  const parts = text.split(',')
  const [a, b] = parts.map((p) => int(name, p.trim(), 1))
  if (parts.length !== 2 || a === undefined || b === undefined || a > b) throw new Error(`--${name} must be MIN,MAX in ms (MIN <= MAX), not ${JSON.stringify(text)}`)
  return [a, b]
}

let config: CampaignConfig
let seeds: number[]
let minFaults: number
let parallel: number
try {
  config = {
    nodes: int('nodes', values.nodes, 2),
    durationS: int('duration', values.duration, 1),
    netns: values.netns,
    faultMs: range('fault-ms', values['fault-ms']),
    gapMs: range('gap-ms', values['gap-ms']),
    clientsPerNode: int('clients', values.clients, 1),
    thinkMs: int('think-ms', values['think-ms'], 0),
  }
  const first = int('first', values.first, 0)
  seeds = Array.from({ length: int('seeds', values.seeds, 1) }, (_, i) => first + i)
  minFaults = int('min-faults', values['min-faults'], 0)
  parallel = int('parallel', values.parallel, 1)
} catch (error) {
  console.error((error as Error).message)
  process.exit(2)
}

/** The runs in flight: each in a process of its own (scripts/chaos/run-seed.ts), stopped with the campaign. */
const children = new Set<ChildProcess>()
/** Set by SIGINT/SIGTERM: no run starts after it, and the runs cut short are not recorded. */
let stopping = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    stopping = true
    for (const child of children) child.kill('SIGTERM')
    // Each run tears its cluster down on the way out; the campaign exits when they have.
    const exits = [...children].map((child) => new Promise((resolve) => child.once('exit', resolve)))
    void Promise.all(exits).then(() => process.exit(130))
  })
}

/** One run in a child process (see run-seed.ts for why); resolves with its report. */
async function runSeed(options: ChaosOptions & { reportPath: string }): Promise<ChaosReport> {
  await rm(options.reportPath, { force: true })
  const child = spawn(process.execPath, [fileURLToPath(new URL('./run-seed.ts', import.meta.url)), JSON.stringify(options)], { stdio: ['ignore', 'inherit', 'inherit'] })
  children.add(child)
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  children.delete(child)
  try {
    return JSON.parse(await readFile(options.reportPath, 'utf8')) as ChaosReport
  } catch (error) {
    throw new Error(`seed ${options.seed}: the run exited with ${code} and left no report (${(error as Error).message})`, { cause: error })
  }
}
const out = values.out
const file = await loadCampaign(out, config, values.fresh).catch((error: unknown) => {
  console.error((error as Error).message)
  process.exit(2)
})
const startVersion = codeVersion()
if (startVersion && startVersion.dirty.length > 0 && !values['allow-dirty']) {
  console.error(
    `the daemon's sources have uncommitted changes (${startVersion.dirty.join(', ')}): commit them, or pass --allow-dirty. ` +
      'Daemons restarted by the faults load the code on disk, so keep this checkout unchanged while the campaign runs ' +
      '(or run it from a worktree of its own: git worktree add).',
  )
  process.exit(2)
}
const done = new Set(file.runs.map((r) => r.seed))
const todo = seeds.filter((s) => !done.has(s))
console.log(
  `campaign: ${seeds.length} seeds x ${config.nodes} nodes x ${config.durationS} s (${config.netns ? 'netns' : 'loopback'}; faults ${config.faultMs.join('-')} ms, gaps ${config.gapMs.join('-')} ms; ${config.clientsPerNode} clients per node, ${config.thinkMs} ms think time); ` +
    `${seeds.length - todo.length} already in ${out}, ${todo.length} to run`,
)
console.log(CAMPAIGN_HEADER)

let saving = Promise.resolve()
const queue = [...todo]
const worker = async (): Promise<void> => {
  for (let seed = queue.shift(); seed !== undefined && !stopping; seed = queue.shift()) {
    console.error(`seed ${seed}: started ${new Date().toISOString()}`)
    const before = codeVersion()
    let report: ChaosReport
    try {
      report = await runSeed({ ...config, seed, reportPath: `tmp/chaos/campaign/seed${seed}.json`, evidence: 'on-failure' })
    } catch (error) {
      console.log(`${(error as Error).message}; not recorded, run it again`)
      continue
    }
    if (stopping) return // cut short by the stop: not recorded
    const after = codeVersion()
    let run = runFigures(report)
    if (before) run = { ...run, commit: before.commit, ...(before.dirty.length > 0 && { dirty: before.dirty }) }
    if (!sameVersion(before, after)) {
      // Daemons restarted during the run may have loaded either version: the run proves nothing.
      console.log(`seed ${seed}: the daemon code changed during the run (${before?.commit} -> ${after?.commit}); not recorded, run it again`)
      continue
    }
    file.runs.push(run)
    saving = saving.then(() => saveCampaign(out, file))
    await saving
    console.log(`${campaignRow(run, minFaults)}${report.ok ? '' : `\n${summarize(report)}`}`)
  }
}
await Promise.all(Array.from({ length: parallel }, worker))
await saveCampaign(out, file)

const wanted = new Set(seeds)
const runs = file.runs.filter((r) => wanted.has(r.seed))
console.log(`\nsummary (${out})`)
console.log(campaignTable(runs, minFaults))
process.exit(runs.some((r) => !r.ok || r.faults < minFaults) ? 1 : 0)
