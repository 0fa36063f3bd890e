import { rmSync } from 'node:fs'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { Level } from 'level'
import { ChaosBackups, type BackupStats } from '../chaos/backups.ts'
import { check, collectState, type CheckResult } from '../chaos/checker.ts'
import { ChaosCluster, sleep } from '../chaos/cluster.ts'
import { checkIndexes, type IndexCheck } from '../chaos/index-check.ts'
import { Nemesis, type FaultEvent } from '../chaos/faults.ts'
import { ChaosNetwork, netnsUnavailable } from '../chaos/netns.ts'
import { NetnsUnavailableError, waitConverged, waitMesh } from '../chaos/run.ts'
import { Workload, type WorkloadStats } from '../chaos/workload.ts'
import { soakPlan, type SoakPlan } from './plan.ts'
import { renderSvg } from './plot.ts'
import { QueryLoad, soakConfig, type QueryStats } from './queries.ts'
import { diskUsage, Sampler, type SoakSample } from './sampler.ts'
import { errorLines, explainErrors, judge, type LoggedError, type TargetResult } from './targets.ts'

/**
 * The soak run (docs/operations.md, Soak test): 5 daemons of one cluster under a steady mixed
 * load (the chaos workload's puts, patches, deletes, text splices and batches, and queries),
 * backups, and a kill -9 and a partition in turn every few minutes, sampled once a minute;
 * at the end, every acknowledged write is checked on every node, the logs are scanned for errors,
 * each LevelDB is compacted to see how much of it was garbage, and the targets are judged.
 */

export interface SoakOptions {
  readonly minutes: number
  readonly seed: number
  readonly nodes?: number
  /** netns: partitions by nftables (root; refused where it cannot run); loopback: a SIGSTOP stands in; auto: netns where it can run. */
  readonly mode: 'netns' | 'loopback' | 'auto'
  /** The results JSON; the plot goes next to it (`.svg`). */
  readonly outPath: string
  /** Folder of the run's data dir (default: the OS temp dir). */
  readonly dataRoot?: string
  readonly keepData?: boolean
  /** Pause between one write client's operations (ms, default 100). */
  readonly thinkMs?: number
  readonly log?: (line: string) => void
}

export interface SoakReport {
  readonly ok: boolean
  readonly minutes: number
  readonly seed: number
  readonly nodes: number
  readonly mode: 'netns' | 'loopback'
  readonly modeNote?: string
  readonly plan: Omit<SoakPlan, 'faults'>
  readonly targets: readonly TargetResult[]
  readonly faults: readonly FaultEvent[]
  readonly workload: WorkloadStats
  readonly queries: QueryStats
  readonly backups: BackupStats | undefined
  readonly check: Omit<CheckResult, 'fingerprints'> | undefined
  readonly converged: boolean
  /** ms from the end of the load (all healed) until every node held the same changes. */
  readonly convergeMs: number | undefined
  readonly compaction: readonly { node: number; beforeBytes: number; afterBytes: number }[]
  /** Every node's declared indexes against a full scan of their namespaces, at the end. */
  readonly indexes: IndexCheck | undefined
  readonly errors: readonly LoggedError[]
  readonly crashes: readonly string[]
  /** Harness failures (an exception, a daemon that would not start). */
  readonly failures: readonly string[]
  readonly samples: readonly SoakSample[]
  readonly dataDir: string
  readonly elapsedS: number
}

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const log = options.log ?? ((line: string) => console.log(line))
  const started = Date.now()
  const nodes = options.nodes ?? 5
  const unavailable = options.mode === 'loopback' ? undefined : netnsUnavailable()
  if (options.mode === 'netns' && unavailable !== undefined) throw new NetnsUnavailableError(unavailable)
  const mode = options.mode === 'loopback' || unavailable !== undefined ? 'loopback' : 'netns'
  const modeNote =
    mode === 'loopback'
      ? `loopback mode: no partitions (they need network namespaces${unavailable ? `: ${unavailable}` : ''}); a SIGSTOP of one node stands in for each`
      : undefined
  if (modeNote) log(modeNote)
  const plan = soakPlan({ minutes: options.minutes, nodes, seed: options.seed, netns: mode === 'netns' })
  log(`soak: ${nodes} daemons, ${options.minutes} min, ${plan.faults.length} faults, a sample every ${plan.sampleEveryMs / 1000} s, a backup every ${plan.backupEveryMs / 1000} s`)

  const root = join(options.dataRoot ?? tmpdir(), `meshsync-soak-${process.pid}-${options.seed}`)
  const network = mode === 'netns' ? new ChaosNetwork(nodes, `${process.pid}-s${options.seed}`) : undefined
  let cluster: ChaosCluster | undefined
  // Ended early (Ctrl-C: main.ts exits on SIGINT): no daemon, namespace or data dir is left.
  const killAll = (): void => {
    for (const n of cluster?.nodes ?? []) n.child?.kill('SIGKILL')
    network?.teardown()
    if (!options.keepData) rmSync(root, { recursive: true, force: true })
  }
  process.once('exit', killAll)
  const failures: string[] = []
  let workload: Workload | undefined
  let queries: QueryLoad | undefined
  let backups: ChaosBackups | undefined
  let nemesis: Nemesis | undefined
  let sampler: Sampler | undefined
  let checkResult: CheckResult | undefined
  let converged = false
  let convergeMs: number | undefined
  let staleReads = 0
  let indexes: IndexCheck | undefined
  let t0 = Date.now()
  const compaction: { node: number; beforeBytes: number; afterBytes: number }[] = []
  let errors: LoggedError[] = []
  try {
    network?.setup()
    // A start (or a restart after a kill) may take long on a busy machine: an hour's run should not end for it.
    cluster = await ChaosCluster.create({ nodes, root, ...(network && { network }), config: soakConfig(), startTimeoutMs: 120_000 })
    const c = cluster
    await c.startAll()
    await waitMesh(c, 60_000, nodes - 1).catch((e: unknown) => log(`warning: ${String(e)}`))
    t0 = Date.now()
    workload = new Workload(c, t0, { seed: options.seed, clientsPerNode: 1, thinkMs: options.thinkMs ?? 100 })
    queries = new QueryLoad(c, options.seed, (options.thinkMs ?? 100) * 2)
    nemesis = new Nemesis(c, t0)
    backups = new ChaosBackups(c, join(root, 'backups'), options.seed, plan.backupEveryMs)
    sampler = new Sampler(c.nodes, t0)
    const s = sampler
    let sampling = true
    const samplingLoop = (async () => {
      for (let k = 0; sampling; k++) {
        const taken = await s.sampleAll()
        log(`  ${(taken[0]?.t ?? 0) / 1000 | 0}s  rss ${taken.map((x) => (x.rssBytes === null ? '-' : Math.round(x.rssBytes / 1048576))).join('/')} MiB, fds ${taken.map((x) => x.fds ?? '-').join('/')}, db ${taken.map((x) => Math.round(x.dbBytes / 1048576)).join('/')} MiB, ${workload?.stats.acknowledged ?? 0} writes acked`)
        const next = t0 + (k + 1) * plan.sampleEveryMs - Date.now()
        if (next > 0) await sleepUnless(next, () => !sampling)
      }
    })()
    workload.start()
    queries.start()
    backups.start()
    for (const fault of plan.faults) await nemesis.play(fault, log)
    const rest = t0 + plan.durationMs - Date.now()
    if (rest > 0) await sleep(rest)
    sampling = false
    await samplingLoop
    await s.sampleAll() // the last one, at the end of the load
    await backups.stop()
    await queries.stop()
    await workload.stop()
    await nemesis.healAll()
    const healedAt = Date.now()
    log(`load stopped: ${workload.stats.acknowledged} of ${workload.stats.attempted} writes acknowledged, ${queries.stats.answered} queries answered; waiting for convergence`)
    const done = await waitConverged(c, 120_000)
    converged = done !== undefined
    convergeMs = done ? done.at - healedAt : undefined
    const states = []
    for (const n of c.nodes) states.push(await collectState(n.spec.index, n.api))
    checkResult = check(workload.history, states)
    staleReads = workload.stats.staleReads
    indexes = await checkIndexes(c.nodes.map((n) => ({ index: n.spec.index, api: n.api })))
    await c.stopAll()
    for (const n of c.nodes) {
      const text = await readFile(`${n.spec.dataDir}.log`, 'utf8').catch(() => '')
      errors.push(...errorLines(text, n.spec.index, t0))
    }
    errors = explainErrors(errors, nemesis.events)
    for (const n of c.nodes) compaction.push({ node: n.spec.index, ...(await compactedSize(join(n.spec.dataDir, 'db'))) })
    await backups.verify()
  } catch (error) {
    failures.push(`harness error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
  } finally {
    await cluster?.stopAll().catch(() => undefined)
    for (const n of cluster?.nodes ?? []) n.api.close()
    network?.teardown()
    process.off('exit', killAll)
  }
  const crashes = cluster?.crashes() ?? []
  const targets = judge({
    plan,
    samples: sampler?.samples ?? [],
    check: checkResult,
    staleReads,
    converged,
    crashes,
    pendingYjs: cluster?.nodes.reduce((a, n) => a + n.pendingYjs, 0) ?? 0,
    errors,
    compaction,
    backups: backups?.stats,
    queries: queries?.stats ?? { answered: 0, wrong: 0, serverErrors: 0, notAnswered: 0, refused: {}, samples: [] },
    indexes,
  })
  const ok = failures.length === 0 && targets.every((t) => t.verdict !== 'FAIL')
  if (ok && !options.keepData) await rm(root, { recursive: true, force: true })
  const { faults: _scheduled, ...planFigures } = plan
  const { fingerprints: _fingerprints, ...checkSummary } = checkResult ?? { fingerprints: [] }
  const report: SoakReport = {
    ok,
    minutes: options.minutes,
    seed: options.seed,
    nodes,
    mode,
    ...(modeNote && { modeNote }),
    plan: planFigures,
    targets,
    faults: nemesis?.events ?? [],
    workload: workload?.stats ?? { attempted: 0, acknowledged: 0, failed: 0, unknown: 0, reads: 0, staleReads: 0, byKind: {}, errors: {} },
    queries: queries?.stats ?? { answered: 0, wrong: 0, serverErrors: 0, notAnswered: 0, refused: {}, samples: [] },
    backups: backups?.stats,
    check: checkResult ? (checkSummary as Omit<CheckResult, 'fingerprints'>) : undefined,
    converged,
    convergeMs,
    compaction,
    indexes,
    errors,
    crashes,
    failures,
    samples: sampler?.samples ?? [],
    dataDir: ok && !options.keepData ? '(removed)' : root,
    elapsedS: Math.round((Date.now() - started) / 1000),
  }
  await mkdir(dirname(options.outPath), { recursive: true })
  await writeFile(options.outPath, `${JSON.stringify(report, null, 2)}\n`)
  const svg = renderSvg(report.samples, report.faults, { title: `meshsync soak: ${nodes} nodes, ${options.minutes} min, seed ${options.seed}, ${mode}`, durationMs: plan.durationMs })
  await writeFile(svgPathOf(options.outPath), svg)
  // Lost writes: the evidence (every operation) next to the results.
  if (checkResult && checkResult.lost > 0 && workload) await writeFile(options.outPath.replace(/\.json$/, '.history.jsonl'), workload.history.map((op) => JSON.stringify(op)).join('\n') + '\n')
  return report
}

export function svgPathOf(outPath: string): string {
  return outPath.replace(/\.json$/, '') + '.svg'
}

/** Sleeps `ms`, or less once `stop()` is true (checked every 200 ms). */
async function sleepUnless(ms: number, stop: () => boolean): Promise<void> {
  const until = Date.now() + ms
  while (!stop() && Date.now() < until) await sleep(Math.min(200, until - Date.now()))
}

/** A stopped node's LevelDB size on disk, and after a full compaction of it (what the live data takes). */
async function compactedSize(dir: string): Promise<{ beforeBytes: number; afterBytes: number }> {
  const beforeBytes = await diskUsage(dir)
  // On Node `Level` is classic-level's ClassicLevel; `level`'s typings leave its compactRange out.
  const db = new Level(dir) as Level & { compactRange(start: string, end: string): Promise<void> }
  try {
    await db.open()
    await db.compactRange('\u0000', '\uffff')
  } finally {
    await db.close()
  }
  return { beforeBytes, afterBytes: await diskUsage(dir) }
}

/** The printed summary: one line per target. */
export function summarizeSoak(r: SoakReport): string {
  const lines = [`meshsync soak: ${r.nodes} nodes, ${r.minutes} min, seed ${r.seed}, ${r.mode}: ${r.ok ? 'PASS' : 'FAIL'}`]
  if (r.modeNote) lines.push(`  ${r.modeNote}`)
  lines.push(`  load: ${r.workload.acknowledged} of ${r.workload.attempted} writes acknowledged (${Object.entries(r.workload.byKind).map(([k, v]) => `${k} ${v.acknowledged}`).join(', ')}), ${r.queries.answered} queries, ${r.faults.length} faults (${[...new Set(r.faults.map((f) => f.kind))].join(', ')}), converged ${r.convergeMs ?? 'NEVER'} ms after the load`)
  for (const t of r.targets) lines.push(`  ${t.verdict.padEnd(10)} ${t.name}: ${t.figure}`)
  for (const f of r.failures) lines.push(`  FAILURE    ${f.split('\n')[0]}`)
  if (!r.ok) lines.push(`  data dirs kept in ${r.dataDir}`)
  return lines.join('\n')
}
