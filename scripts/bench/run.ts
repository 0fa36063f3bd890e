/**
 * `npm run bench [-- --runs N] [--full] [--only a,b] [--records N] [--puts N] [--duration S] [--writes N] [--sizes A,B] [--entities N] [--backup-entities N] [--edits N] [--dir DIR] [--cpu-prof]`
 *
 * Every figure is measured against a baseline taken in the same run (raw classic-level, raw
 * gossipsub, OrbitDB, the changed Yjs updates themselves), reported as the median over the runs with
 * min and max. Each benchmark checks what was written before it reports; a wrong result fails the
 * bench (exit 1). A baseline that cannot run (a peer system that does not install) is reported as
 * such, with the reason. One JSON file per benchmark goes to bench/results/. Each benchmark runs
 * in a process of its own.
 */
import { spawn } from 'node:child_process'
import { rmSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { ackedPuts } from './acked-puts.ts'
import { backupBench } from './backup.ts'
import { batchWrites } from './batch-writes.ts'
import { killChildren } from './children.ts'
import { largeTextEdits } from './large-text-edits.ts'
import { collectEnvironment } from './env.ts'
import { propagation } from './propagation.ts'
import { replicatedWrites } from './replicated-writes.ts'
import { catchUpBench } from './catch-up.ts'
import { startupMemory } from './startup-memory.ts'
import { textTrace } from './text-trace.ts'
import { formatProfile, formatTable, writeResults, type Outcome } from './report.ts'
import type { Benchmark, BenchOptions } from './types.ts'

const REPO_ROOT = resolve(import.meta.dirname, '..', '..')

const USAGE = `usage: npm run bench -- [options]
  --runs N       measured runs per benchmark, each with its own baseline (default 3)
  --full         bigger runs (500,000 batched records, 50,000 PUTs, 10 s propagation windows and 7 nodes,
                 10,000 replicated writes, catch-up at 300,000 entities too, start-up with 1,000,000 entities)
  --only LIST    comma-separated benchmarks: batch-writes, acked-puts, propagation, replicated-writes, catch-up,
                 text-trace, large-text-edits, startup-memory, backup
  --records N    records of batch-writes (a multiple of 1000)
  --puts N       PUTs of acked-puts
  --duration S   seconds of writes (at 50/s) per propagation window (default 5)
  --writes N     total writes of replicated-writes (default 3000)
  --sizes LIST   entity counts of catch-up, comma-separated (default 1000,100000)
  --entities N   entities in the data dir of startup-memory (default 100,000; 1,000,000 with --full)
  --backup-entities N  entities of the backup benchmark (default 100,000; 300,000 with --full)
  --edits N      single-splice commits of large-text-edits (default 2,000; 10,000 with --full)
  --dir DIR      where temporary databases go (default: the OS temp dir; not a tmpfs, fsync must cost)
  --out DIR      where result JSON goes (default bench/results)
  --cpu-prof     one extra unmeasured pass per benchmark with the daemon(s) under --cpu-prof; prints top self time`

function positiveInt(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${flag} takes a positive integer, got ${value}`)
  return n
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string' },
      full: { type: 'boolean', default: false },
      only: { type: 'string' },
      records: { type: 'string' },
      puts: { type: 'string' },
      duration: { type: 'string' },
      writes: { type: 'string' },
      sizes: { type: 'string' },
      entities: { type: 'string' },
      'backup-entities': { type: 'string' },
      edits: { type: 'string' },
      dir: { type: 'string' },
      out: { type: 'string' },
      'cpu-prof': { type: 'boolean', default: false },
      // Internal: run the one benchmark of --only in this process and write its outcome here.
      'child-result': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  })
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  const runs = positiveInt(values.runs, '--runs') ?? 3
  const benchmarks: Benchmark[] = [
    batchWrites(positiveInt(values.records, '--records')),
    ackedPuts(positiveInt(values.puts, '--puts')),
    propagation(positiveInt(values.duration, '--duration')),
    replicatedWrites(positiveInt(values.writes, '--writes')),
    catchUpBench(values.sizes?.split(',').map((n) => positiveInt(n.trim(), '--sizes') as number)),
    backupBench(positiveInt(values['backup-entities'], '--backup-entities')),
    textTrace(),
    largeTextEdits(positiveInt(values.edits, '--edits')),
    startupMemory(positiveInt(values.entities, '--entities')),
  ]
  const only = values.only?.split(',').map((s) => s.trim())
  const unknown = only?.filter((name) => !benchmarks.some((b) => b.name === name)) ?? []
  if (unknown.length > 0) throw new Error(`unknown benchmark(s): ${unknown.join(', ')}\n${USAGE}`)
  const selected = only ? benchmarks.filter((b) => only.includes(b.name)) : benchmarks

  const childResult = values['child-result']
  if (childResult !== undefined && selected.length !== 1) throw new Error('--child-result takes exactly one benchmark in --only')
  const baseDir = await mkdtemp(join(resolve(values.dir ?? tmpdir()), 'meshsync-bench-'))
  // Interrupted: child processes are killed on exit (daemon.ts, ipc-child.ts); the temp dir goes too.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: stopping`)
      killChildren()
      rmSync(baseDir, { recursive: true, force: true, maxRetries: 3 })
      process.exit(130)
    })
  }
  const outDir = resolve(values.out ?? join(REPO_ROOT, 'bench', 'results'))
  const options: BenchOptions = {
    runs,
    full: values.full,
    baseDir,
    ...(values['cpu-prof'] && { cpuProfDir: join(outDir, 'profiles') }),
    log: (message) => console.log(message),
  }
  if (childResult !== undefined) {
    const bench = selected[0] as Benchmark
    let outcome: Outcome
    try {
      outcome = { ok: true, result: await bench.run(options) }
    } catch (error) {
      outcome = { ok: false, failure: { name: bench.name, title: bench.title, error: error instanceof Error ? (error.stack ?? error.message) : String(error) } }
    } finally {
      await rm(baseDir, { recursive: true, force: true })
    }
    await writeFile(childResult, JSON.stringify(outcome))
    return 0
  }
  const environment = collectEnvironment(baseDir)
  const date = new Date()
  console.log(`meshsync bench: ${runs} run(s)${values.full ? ', full' : ''}; node ${environment.node}, ${environment.cpuModel} x${environment.cores}, ${environment.benchDir.fsType} at ${baseDir} (fdatasync ~${environment.benchDir.fdatasyncMedianMs} ms)`)
  if ((environment.loadAverage[0] ?? 0) > environment.cores / 2) console.log(`warning: load average ${environment.loadAverage[0]} on ${environment.cores} cores: other work will skew the figures`)
  if (environment.benchDir.fsType === 'tmpfs') console.log('warning: the bench dir is a tmpfs: fsync costs nothing there, the ratios mean little')

  const outcomes: Outcome[] = []
  try {
    // Each benchmark in a process of its own (runInChild).
    for (const bench of selected) {
      console.log(`\n${bench.name}: ${bench.title}`)
      const started = Date.now()
      const outcome = await runInChild(bench, baseDir)
      outcomes.push(outcome)
      if (outcome.ok) console.log(`  done in ${((Date.now() - started) / 1000).toFixed(1)} s`)
      else console.error(`  FAILED: ${outcome.failure.error}`)
    }
  } finally {
    await rm(baseDir, { recursive: true, force: true })
  }

  console.log(`\n${formatTable(outcomes)}`)
  for (const outcome of outcomes) {
    const profile = outcome.ok ? formatProfile(outcome.result) : ''
    if (profile) console.log(`\n${profile}`)
  }
  const recordedOptions = {
    runs,
    full: values.full,
    only: only ?? null,
    records: values.records ?? null,
    puts: values.puts ?? null,
    duration: values.duration ?? null,
    writes: values.writes ?? null,
    sizes: values.sizes ?? null,
    backupEntities: values['backup-entities'] ?? null,
    entities: values.entities ?? null,
    cpuProf: values['cpu-prof'],
  }
  const files = await writeResults(outDir, date, environment, recordedOptions, outcomes)
  console.log(`\nresults: ${files.map((f) => f.replace(`${REPO_ROOT}/`, '')).join(', ')}`)
  const failed = outcomes.filter((o) => !o.ok).length
  if (failed > 0) console.error(`${failed} benchmark(s) failed`)
  return failed > 0 ? 1 : 0
}

/**
 * Runs one benchmark in a process of its own (this script with `--only NAME --child-result FILE`
 * and the same options), so that no benchmark runs in a heap, a page cache of open files or a
 * JIT state another one left behind (the catch-up benchmark holds two 100,000-entity nodes in the
 * bench process); resolves with its outcome.
 */
async function runInChild(bench: Benchmark, baseDir: string): Promise<Outcome> {
  const resultFile = join(baseDir, `${bench.name}.outcome.json`)
  // The same options; the last --only and --dir win (parseArgs keeps an option's last value).
  const args = [...process.argv.slice(2), '--only', bench.name, '--dir', baseDir, '--child-result', resultFile]
  const child = spawn(process.execPath, [...process.execArgv, import.meta.filename, ...args], { stdio: ['ignore', 'inherit', 'inherit'] })
  const code = await new Promise<number | null>((done) => child.once('exit', (c) => done(c)))
  try {
    return JSON.parse(await readFile(resultFile, 'utf8')) as Outcome
  } catch {
    return { ok: false, failure: { name: bench.name, title: bench.title, error: `its process exited with ${code} and no outcome` } }
  }
}

main().then(
  (code) => {
    process.exitCode = code
  },
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error)
    process.exitCode = 1
  },
)
