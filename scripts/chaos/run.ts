import { rmSync } from 'node:fs'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { check, collectState, type CheckResult, type NodeState } from './checker.ts'
import { ChaosBackups, type BackupStats } from './backups.ts'
import { ChaosCluster, sampleProc, sleep } from './cluster.ts'
import { ChaosDisks, tmpfsUnavailable } from './disks.ts'
import { Nemesis, type FaultEvent } from './faults.ts'
import { ChaosNetwork, netnsUnavailable } from './netns.ts'
import { checkIndexes, indexConfig, type IndexCheck } from './index-check.ts'
import { DISK_FAULTS, makeSchedule, NEIGHBOURHOOD_MIN_NODES, possibleKinds, scheduleHash, type FaultKind, type ScheduledFault } from './schedule.ts'
import { Workload, type VersionVector, type WorkloadStats } from './workload.ts'

export interface ChaosOptions {
  readonly nodes: number
  /** Length of the faulty phase (workload + faults), seconds. */
  readonly durationS: number
  readonly seed: number
  /** Network namespaces + nftables (root only); refused (NetnsUnavailableError) when unavailable (docs/chaos.md). */
  readonly netns: boolean
  /** Where the JSON report goes (default: none). */
  readonly reportPath?: string
  /** Write the operation history and final states next to the report always (default) or only for a failed run. */
  readonly evidence?: 'always' | 'on-failure'
  /** MESHSYNC_FAILPOINTS for every daemon (proving the checker works). */
  readonly failpoints?: string
  /** MESHSYNC_V8_FLAGS for every daemon (default: the daemon's own choice; empty: none). */
  readonly v8Flags?: string
  /** Longest wait for convergence after the final heal, seconds (default 120). */
  readonly convergeTimeoutS?: number
  /** Keep the data dirs afterwards (default: only when the run failed). */
  readonly keepData?: boolean
  /** Folder the run's data dir (`meshsync-chaos-<pid>-<seed>`) goes in (default: the OS temp dir). */
  readonly dataRoot?: string
  readonly clientsPerNode?: number
  readonly thinkMs?: number
  /** Fault lengths and gaps (ms), for short runs. */
  readonly faultMs?: readonly [number, number]
  /** Only these fault kinds. */
  readonly kinds?: readonly FaultKind[]
  /**
   * These faults instead of the seed's schedule (the seed still drives the workload): for tests
   * that need faults in a given order. A kind the run's mode cannot inject is refused before
   * anything starts.
   */
  readonly schedule?: readonly ScheduledFault[]
  /** Size of each node's tmpfs data disk in netns mode, MiB (default: from the duration, see {@link diskMiB}). */
  readonly diskMiB?: number
  readonly gapMs?: readonly [number, number]
  /** Progress lines (default: console.log). */
  readonly log?: (line: string) => void
  /**
   * Take a backup through a daemon every this many ms while the workload runs (files and
   * incremental entity backups in turn, scripts/chaos/backups.ts); every set must verify
   * afterwards. Default: none.
   */
  readonly backupEveryMs?: number
}

export interface Percentiles {
  readonly n: number
  readonly p50: number
  readonly p99: number
  readonly max: number
}

export interface ChaosReport {
  readonly ok: boolean
  readonly failures: string[]
  readonly seed: number
  readonly mode: 'netns' | 'loopback'
  readonly modeNote?: string
  readonly nodes: number
  readonly durationS: number
  readonly failpoints?: string
  readonly scheduleHash: string
  readonly schedule: readonly ScheduledFault[]
  readonly faults: readonly FaultEvent[]
  readonly faultsByKind: Record<string, number>
  readonly workload: WorkloadStats
  readonly check: CheckResult | undefined
  /** Every node's declared indexes against a full scan, at the end. */
  readonly indexes: IndexCheck | undefined
  readonly convergence: {
    /** Per heal and node: ms until the node held everything the cluster held at the heal. */
    readonly afterHeal: Percentiles
    /**
     * The same samples split: by the kind of the fault healed, and into those that ended before
     * the next fault was injected (`beforeNextFault`) and those that ran into it (`intoNextFault`:
     * they measure the next fault too, since a node cut off again cannot catch up).
     */
    readonly afterHealBy?: { readonly kind: Record<string, Percentiles>; readonly beforeNextFault: Percentiles; readonly intoNextFault: Percentiles }
    /** Every sample of `afterHeal`. */
    readonly healSamples?: readonly HealSample[]
    /** ms from the end of the workload (everything healed) until every node vector was equal. */
    readonly finalMs: number | undefined
    /** Per node: ms after the final heal until its vector reached the final one. */
    readonly finalPerNode: Percentiles
  }
  readonly resources: readonly { node: number; nodeId: string; starts: number; maxRssMB: number; finalRssMB: number; maxFds: number; finalFds: number; maxDiskMB?: number; finalDiskMB?: number }[]
  /** Size of each node's tmpfs data disk (netns mode), MiB. */
  readonly diskMiB?: number
  readonly crashes: readonly string[]
  readonly pendingYjs: number
  readonly fingerprints: readonly string[]
  /** Backups taken during the run ({@link ChaosOptions.backupEveryMs}). */
  readonly backups?: BackupStats
  readonly dataDir: string
  readonly elapsedS: number
}

/**
 * Size of a node's tmpfs data disk: 64 MiB plus 0.25 MiB per second of workload, in steps of
 * 16 MiB (a node's data dir grew by about 0.11 MiB/s at the default write rate, LevelDB's logs
 * and tables included: 4.6 MB after 40 s on 3 nodes), so about twice what the run writes, or
 * more. The report gives each node's largest data dir (`maxDiskMB`). A full disk means a
 * ballast file fills the rest.
 */
export function diskMiB(durationS: number): number {
  return Math.ceil((64 + durationS * 0.25) / 16) * 16
}

export function percentiles(samples: readonly number[]): Percentiles {
  const s = [...samples].sort((a, b) => a - b)
  const at = (q: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? 0
  return { n: s.length, p50: at(0.5), p99: at(0.99), max: s.at(-1) ?? 0 }
}

/** One node's catch-up after one heal: the fault kind healed, when (ms from the start), how long. */
export interface HealSample {
  readonly kind: string
  /** Index of the fault in the schedule. */
  readonly fault: number
  readonly node: number
  readonly healedAt: number
  readonly ms: number
}

/** {@link ChaosReport.convergence}'s `afterHealBy`: heal samples by fault kind and by whether the next fault cut into them. */
export function splitHealSamples(samples: readonly HealSample[], events: readonly FaultEvent[]): NonNullable<ChaosReport['convergence']['afterHealBy']> {
  const injections = events.map((e) => e.injectedAt).sort((a, b) => a - b)
  const byKind = new Map<string, number[]>()
  const before: number[] = []
  const into: number[] = []
  for (const h of samples) {
    const list = byKind.get(h.kind) ?? []
    list.push(h.ms)
    byKind.set(h.kind, list)
    const next = injections.find((at) => at > h.healedAt)
    ;(next !== undefined && h.healedAt + h.ms > next ? into : before).push(h.ms)
  }
  return {
    kind: Object.fromEntries([...byKind].sort(([a], [b]) => a.localeCompare(b)).map(([kind, ms]) => [kind, percentiles(ms)])),
    beforeNextFault: percentiles(before),
    intoNextFault: percentiles(into),
  }
}

const dominates = (a: VersionVector, b: VersionVector): boolean => Object.entries(b).every(([k, v]) => (a[k] ?? 0) >= v)
const union = (vs: readonly VersionVector[]): VersionVector => {
  const out: VersionVector = {}
  for (const v of vs) for (const [k, n] of Object.entries(v)) out[k] = Math.max(out[k] ?? 0, n)
  return out
}

/** Network faults were asked for (`--netns`) on a machine that cannot make them. */
export class NetnsUnavailableError extends Error {
  constructor(why: string) {
    super(`--netns needs network namespaces and nftables: ${why}; run as root with \`ip\` and \`nft\` installed, or leave out --netns for a loopback run (process faults only)`)
    this.name = 'NetnsUnavailableError'
  }
}

/**
 * One chaos run: cluster up, workload + seeded faults, heal, converge, check, report. A run asked
 * for netns mode where it cannot run is refused (NetnsUnavailableError) before anything starts,
 * never run in loopback mode instead: it would test no network fault.
 */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const log = options.log ?? ((line: string) => console.log(line))
  const started = Date.now()
  const unavailable = options.netns ? netnsUnavailable() : undefined
  if (unavailable !== undefined) throw new NetnsUnavailableError(unavailable)
  const mode: 'netns' | 'loopback' = options.netns ? 'netns' : 'loopback'
  const noDisks = mode === 'netns' ? tmpfsUnavailable() : undefined
  const disks = mode === 'netns' && !noDisks ? new ChaosDisks((options.diskMiB ?? diskMiB(options.durationS)) * 1024 * 1024) : undefined
  const modeNote =
    mode === 'loopback'
      ? 'loopback mode: process faults only (kill -9, SIGSTOP/SIGCONT, restart of all nodes); pass --netns (as root) for network faults'
      : noDisks
        ? `no tmpfs data disks (no disk-full faults): ${noDisks}`
        : undefined
  if (modeNote) log(modeNote)
  const durationMs = options.durationS * 1000
  const impossible = options.schedule?.find((f) => !possibleKinds(mode === 'netns', disks !== undefined, options.nodes).includes(f.kind))
  if (impossible) {
    const needs = (DISK_FAULTS as readonly FaultKind[]).includes(impossible.kind)
      ? 'the tmpfs data disks of netns mode'
      : impossible.kind === 'kill-neighbourhood'
        ? `a cluster of ${NEIGHBOURHOOD_MIN_NODES} nodes or more`
        : 'netns mode'
    const why = impossible.kind === 'kill-neighbourhood' ? `this run has ${options.nodes}` : (unavailable ?? noDisks ?? 'netns mode not asked for')
    throw new Error(`the schedule has a ${impossible.kind} fault, which needs ${needs}: ${why}`)
  }
  const schedule = options.schedule ?? makeSchedule({
    seed: options.seed,
    nodes: options.nodes,
    durationMs,
    netns: mode === 'netns',
    disks: disks !== undefined,
    ...(options.faultMs && { minFaultMs: options.faultMs[0], maxFaultMs: options.faultMs[1] }),
    ...(options.gapMs && { minGapMs: options.gapMs[0], maxGapMs: options.gapMs[1] }),
    ...(options.kinds && { kinds: options.kinds }),
  })
  log(`seed ${options.seed}: ${schedule.length} faults scheduled over ${options.durationS} s (schedule ${scheduleHash(schedule)})`)

  const root = join(options.dataRoot ?? tmpdir(), `meshsync-chaos-${process.pid}-${options.seed}`)
  const network = mode === 'netns' ? new ChaosNetwork(options.nodes, `${process.pid}-s${options.seed}`) : undefined
  const failures: string[] = []
  let cluster: ChaosCluster | undefined
  // A run ended early (Ctrl-C: main.ts exits on SIGINT) leaves nothing behind: no daemon, no
  // namespace or disk, and no data dir or socket unless --keep-data.
  const killAll = (): void => {
    for (const n of cluster?.nodes ?? []) n.child?.kill('SIGKILL')
    network?.teardown()
    disks?.teardown(options.keepData === true)
    if (!options.keepData) rmSync(root, { recursive: true, force: true })
  }
  process.once('exit', killAll)
  const resources = new Map<number, { maxRss: number; maxFds: number; rss: number; fds: number; maxDisk: number; disk: number }>()
  let checkResult: CheckResult | undefined
  let indexCheck: IndexCheck | undefined
  let finalMs: number | undefined
  const healSamples: HealSample[] = []
  const finalPerNode: number[] = []
  let nemesis: Nemesis | undefined
  let workload: Workload | undefined
  let backups: ChaosBackups | undefined
  const finalStates: NodeState[] = []
  const diagnostics: unknown[] = []
  try {
    network?.setup()
    const leftovers = disks?.setup() ?? []
    if (leftovers.length > 0) log(`unmounted ${leftovers.length} tmpfs disks left by crashed runs`)
    cluster = await ChaosCluster.create({ nodes: options.nodes, root, ...(network && { network }), ...(disks && { disks }), env: daemonEnv(options), config: { ...indexConfig(), ...overlayConfig(options.nodes) } })
    const c = cluster
    await c.startAll()
    await waitMesh(c, 30_000, options.nodes >= NEIGHBOURHOOD_MIN_NODES ? CHAOS_OVERLAY.minConnections : options.nodes - 1).catch((e: unknown) => log(`warning: ${String(e)}`))
    log(`${mode}: ${options.nodes} daemons up (${c.nodes.map((n) => n.spec.nodeId).join(' ')})`)

    const t0 = Date.now()
    workload = new Workload(c, t0, { seed: options.seed, ...(options.clientsPerNode && { clientsPerNode: options.clientsPerNode }), ...(options.thinkMs !== undefined && { thinkMs: options.thinkMs }) })
    nemesis = new Nemesis(c, t0)
    let sampling = true
    const sampler = (async () => {
      while (sampling) {
        for (const n of c.nodes) {
          const pid = n.pid
          const s = pid !== undefined ? sampleProc(pid) : undefined
          const r = resources.get(n.spec.index) ?? { maxRss: 0, maxFds: 0, rss: 0, fds: 0, maxDisk: 0, disk: 0 }
          // The data dir's size (not the ballast: sampled only while the disk is not being filled).
          const used = c.disks?.usage(n.spec.index)?.used
          const disk = used !== undefined && !nemesis?.filling(n.spec.index) ? used : r.disk
          if (!s) {
            resources.set(n.spec.index, { ...r, maxDisk: Math.max(r.maxDisk, disk), disk })
            continue
          }
          resources.set(n.spec.index, { maxRss: Math.max(r.maxRss, s.rssBytes), maxFds: Math.max(r.maxFds, s.fds), rss: s.rssBytes, fds: s.fds, maxDisk: Math.max(r.maxDisk, disk), disk })
        }
        await sleep(500)
      }
    })()
    workload.start()
    if (options.backupEveryMs) {
      backups = new ChaosBackups(c, join(root, 'backups'), options.seed, options.backupEveryMs)
      backups.start()
    }
    const catchUps: Promise<void>[] = []
    for (const fault of schedule) {
      await nemesis.play(fault, log)
      const healedAt = Date.now() - t0
      catchUps.push(measureCatchUp(c, 60_000).then((samples) => void healSamples.push(...samples.map(([node, ms]) => ({ kind: fault.kind, fault: fault.index, node, healedAt, ms })))))
    }
    const rest = t0 + durationMs - Date.now()
    if (rest > 0) await sleep(rest)
    await backups?.stop()
    await workload.stop()
    await nemesis.healAll()
    const healedAt = Date.now()
    log(`workload stopped: ${workload.stats.acknowledged} of ${workload.stats.attempted} writes acknowledged (${workload.stats.unknown} unknown); waiting for convergence`)
    // What every node says 3 s after the final heal (kept in the JSON report).
    const early = sleep(3_000).then(() => diagnose(c)).then((d) => void diagnostics.push({ at: 'final heal + 3 s', nodes: d }))
    const converged = await waitConverged(c, (options.convergeTimeoutS ?? 120) * 1000)
    await early
    if (converged) {
      finalMs = converged.at - healedAt
      finalPerNode.push(...converged.perNode.map((t) => t - healedAt))
    } else {
      failures.push(`no convergence within ${options.convergeTimeoutS ?? 120} s after the final heal`)
      diagnostics.push(...(await diagnose(c)))
    }
    await Promise.all(catchUps)
    sampling = false
    await sampler
    const states = finalStates
    for (const n of c.nodes) states.push(await collectState(n.spec.index, n.api))
    checkResult = check(workload.history, states)
    if (checkResult.lost > 0) failures.push(`${checkResult.lost} acknowledged writes lost`)
    if (checkResult.phantoms > 0) failures.push(`${checkResult.phantoms} values no acknowledged or pending write made`)
    if (checkResult.partialBatches > 0) failures.push(`${checkResult.partialBatches} batches partly applied`)
    if (checkResult.divergent) failures.push('nodes ended with different states')
    indexCheck = await checkIndexes(c.nodes.map((n) => ({ index: n.spec.index, api: n.api })))
    if (indexCheck.mismatches.length > 0) failures.push(`${indexCheck.mismatches.length} indexes disagree with a full scan: ${indexCheck.mismatches[0]}`)
    if (workload.stats.staleReads > 0) failures.push(`${workload.stats.staleReads} stale reads (an acknowledged insert not visible on its node)`)
    if (backups) {
      await backups.verify()
      const corrupt = backups.stats.corrupt
      if (corrupt.length > 0) failures.push(`${corrupt.length} backups do not verify: ${corrupt[0]}`)
    }
  } catch (error) {
    failures.push(`harness error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
  } finally {
    const crashes = cluster?.crashes() ?? []
    if (crashes.length > 0) failures.push(`${crashes.length} daemon crashes`)
    const pendingYjs = cluster?.nodes.reduce((a, n) => a + n.pendingYjs, 0) ?? 0
    if (pendingYjs > 0) failures.push(`${pendingYjs} "Yjs update left pending" log lines`)
    await cluster?.stopAll().catch(() => undefined)
    network?.teardown()
    process.off('exit', killAll)
    for (const n of cluster?.nodes ?? []) n.api.close()
    const ok = failures.length === 0
    // A failed run keeps its data dirs: copied off the tmpfs disks before they go.
    disks?.teardown(!ok || options.keepData === true)
    if (ok && !options.keepData) await rm(root, { recursive: true, force: true })
    const report: ChaosReport = {
      ok,
      failures,
      seed: options.seed,
      mode,
      ...(modeNote && { modeNote }),
      nodes: options.nodes,
      durationS: options.durationS,
      ...(options.failpoints && { failpoints: options.failpoints }),
      scheduleHash: scheduleHash(schedule),
      schedule,
      faults: nemesis?.events ?? [],
      faultsByKind: nemesis?.countsByKind() ?? {},
      workload: workload?.stats ?? { attempted: 0, acknowledged: 0, failed: 0, unknown: 0, reads: 0, staleReads: 0, byKind: {}, errors: {} },
      check: checkResult,
      indexes: indexCheck,
      convergence: {
        afterHeal: percentiles(healSamples.map((h) => h.ms)),
        afterHealBy: splitHealSamples(healSamples, nemesis?.events ?? []),
        healSamples,
        finalMs,
        finalPerNode: percentiles(finalPerNode),
      },
      resources: (cluster?.nodes ?? []).map((n) => {
        const r = resources.get(n.spec.index)
        return {
          node: n.spec.index,
          nodeId: n.spec.nodeId,
          starts: n.starts,
          maxRssMB: mb(r?.maxRss),
          finalRssMB: mb(r?.rss),
          maxFds: r?.maxFds ?? 0,
          finalFds: r?.fds ?? 0,
          ...(disks && { maxDiskMB: mb(r?.maxDisk), finalDiskMB: mb(r?.disk) }),
        }
      }),
      ...(disks && { diskMiB: disks.bytes / 1024 / 1024 }),
      crashes,
      pendingYjs,
      fingerprints: checkResult?.fingerprints ?? [],
      ...(backups && { backups: backups.stats }),
      dataDir: ok && !options.keepData ? '(removed)' : root,
      elapsedS: Math.round((Date.now() - started) / 1000),
    }
    if (options.reportPath) {
      await mkdir(dirname(options.reportPath), { recursive: true })
      // The evidence: every operation, and what each node held at the end.
      if (!ok || options.evidence !== 'on-failure') {
        await writeFile(options.reportPath.replace(/\.json$/, '') + '.history.jsonl', (workload?.history ?? []).map((op) => JSON.stringify(op)).join('\n') + '\n')
        if (finalStates.length > 0) await writeFile(options.reportPath.replace(/\.json$/, '') + '.states.json', JSON.stringify(finalStates))
      }
      await writeFile(options.reportPath, `${JSON.stringify({ ...report, staleReadSamples: workload?.staleReadSamples ?? [], diagnostics }, null, 2)}\n`)
    }
    // eslint-disable-next-line no-unsafe-finally
    return report
  }
}

const mb = (bytes: number | undefined): number => Math.round(((bytes ?? 0) / 1024 / 1024) * 10) / 10

/**
 * The overlay of a chaos cluster: a low degree, so that in a cluster of 7 or more a node's
 * neighbourhood is not the whole cluster (a kill-neighbourhood fault then leaves a node whose every
 * peer is gone, and the survivors elsewhere must carry on and take the restarted ones back).
 */
const CHAOS_OVERLAY = { minConnections: 3, maxConnections: 4 } as const

function overlayConfig(nodes: number): object {
  return nodes >= NEIGHBOURHOOD_MIN_NODES ? { p2p: CHAOS_OVERLAY } : {}
}

/** Waits until every node has `want` connected peers (every other node in a small cluster; the soak harness waits the same way). */
export async function waitMesh(c: ChaosCluster, timeoutMs: number, want: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const counts = await Promise.all(
      c.nodes.map(async (n) => (await n.api.get<{ connected: boolean }[]>('/v1/peers').catch(() => [])).filter((p) => p.connected).length),
    )
    if (counts.every((k) => k >= want)) return
    if (Date.now() > deadline) throw new Error(`mesh incomplete after ${timeoutMs} ms: connected peers per node ${JSON.stringify(counts)}`)
    await sleep(200)
  }
}

async function vectors(c: ChaosCluster): Promise<(VersionVector | undefined)[]> {
  return Promise.all(c.nodes.map((n) => n.api.get<{ versionVector: VersionVector }>('/v1/status', 5_000).then((s) => s.versionVector).catch(() => undefined)))
}

/** Per node, ms until its vector covers what the whole cluster held when this was called. */
async function measureCatchUp(c: ChaosCluster, timeoutMs: number): Promise<[node: number, ms: number][]> {
  const start = Date.now()
  const target = union((await vectors(c)).filter((v): v is VersionVector => v !== undefined))
  const done = new Map<number, number>()
  while (done.size < c.nodes.length && Date.now() - start < timeoutMs) {
    const vs = await vectors(c)
    vs.forEach((v, i) => {
      if (v && !done.has(i) && dominates(v, target)) done.set(i, Date.now() - start)
    })
    await sleep(100)
  }
  return [...done]
}

/** Polls until every node reports the same vector twice in a row; undefined on timeout. */
export async function waitConverged(c: ChaosCluster, timeoutMs: number): Promise<{ at: number; perNode: number[] } | undefined> {
  const start = Date.now()
  let previous = ''
  const reached = new Map<number, number>()
  while (Date.now() - start < timeoutMs) {
    const vs = await vectors(c)
    const keys = vs.map((v) => (v ? JSON.stringify(Object.entries(v).sort()) : 'down'))
    const target = union(vs.filter((v): v is VersionVector => v !== undefined))
    vs.forEach((v, i) => {
      if (v && dominates(v, target) && !reached.has(i)) reached.set(i, Date.now())
      else if (v && !dominates(v, target)) reached.delete(i)
    })
    const same = keys.every((k) => k === keys[0]) && keys[0] !== 'down'
    if (same && keys[0] === previous) return { at: Date.now(), perNode: c.nodes.map((_, i) => reached.get(i) ?? Date.now()) }
    previous = same ? (keys[0] as string) : ''
    await sleep(100)
  }
  return undefined
}

/** The printed summary. */
export function summarize(r: ChaosReport): string {
  const lines: string[] = []
  const ch = r.check
  lines.push(`meshsync chaos: seed ${r.seed}, ${r.nodes} nodes, ${r.durationS} s, ${r.mode}${r.failpoints ? `, failpoints ${r.failpoints}` : ''}: ${r.ok ? 'PASS' : 'FAIL'}`)
  if (r.modeNote) lines.push(`  ${r.modeNote}`)
  lines.push(`  writes         attempted ${r.workload.attempted}, acknowledged ${r.workload.acknowledged}, refused ${r.workload.failed}, unknown ${r.workload.unknown}`)
  lines.push(`  by kind        ${Object.entries(r.workload.byKind).map(([k, v]) => `${k} ${v.acknowledged}/${v.attempted}`).join(', ')}`)
  lines.push(`  not acked      ${Object.entries(r.workload.errors).sort((x, y) => y[1] - x[1]).slice(0, 6).map(([k, v]) => `${k} ${v}`).join(', ')}`)
  lines.push(`  lost           ${ch?.lost ?? '?'} acknowledged writes lost; phantoms ${ch?.phantoms ?? '?'}; partial batches ${ch?.partialBatches ?? '?'}; stale reads ${r.workload.staleReads}/${r.workload.reads}`)
  lines.push(`  indexes        ${r.indexes ? `${r.indexes.checked} checked against a full scan, ${r.indexes.mismatches.length} disagree` : '?'}`)
  lines.push(`  faults         ${r.faults.length} (${Object.entries(r.faultsByKind).map(([k, v]) => `${k} ${v}`).join(', ')}), schedule ${r.scheduleHash}`)
  const a = r.convergence.afterHeal
  const f = r.convergence.finalPerNode
  lines.push(`  converge       after each heal p50 ${a.p50} / p99 ${a.p99} / max ${a.max} ms (n=${a.n}); final ${r.convergence.finalMs ?? 'NEVER'} ms (per node p50 ${f.p50} / p99 ${f.p99} / max ${f.max})`)
  const by = r.convergence.afterHealBy
  if (by) {
    const p = (x: Percentiles): string => `${x.p50}/${x.p99}/${x.max} ms (n=${x.n})`
    lines.push(`  heal split     before the next fault ${p(by.beforeNextFault)}; into the next fault ${p(by.intoNextFault)}`)
    lines.push(`  heal by kind   ${Object.entries(by.kind).map(([k, x]) => `${k} ${p(x)}`).join('; ')}`)
  }
  const b = r.backups
  if (b) {
    const failed = Object.entries(b.failed).map(([k, v]) => `${k} ${v}`).join(', ')
    lines.push(`  backups        ${b.attempted} asked, ${b.taken.files} files + ${b.taken.entities} entity sets taken${failed ? ` (not taken: ${failed})` : ''}; ${b.verified} verified, ${b.corrupt.length} corrupt`)
  }
  lines.push(`  state          ${ch ? (ch.divergent ? 'DIVERGENT' : 'identical') : '?'} on all nodes; conflicts ${ch?.conflicts ?? '?'} (${ch?.conflictsIdentical ? 'identical' : 'DIFFER'}); fingerprints ${r.fingerprints.join(' ')}`)
  lines.push(`  resources      ${r.resources.map((x) => `n${x.node}: ${x.maxRssMB} MB max rss, ${x.maxFds} fds max, ${x.starts} starts${x.maxDiskMB !== undefined ? `, ${x.maxDiskMB} MB max on disk` : ''}`).join('; ')}${r.diskMiB ? ` (tmpfs data disks of ${r.diskMiB} MiB)` : ''}`)
  for (const f2 of r.failures) lines.push(`  FAILURE        ${f2.split('\n')[0]}`)
  for (const s of [...(ch?.lostSamples ?? []).slice(0, 8), ...(ch?.phantomSamples ?? []).slice(0, 5), ...(ch?.divergenceSamples ?? []).slice(0, 8), ...(r.indexes?.mismatches ?? []).slice(0, 4), ...r.crashes.slice(0, 3)]) lines.push(`    ${s.slice(0, 400)}`)
  if (!r.ok) lines.push(`  data dirs kept in ${r.dataDir}`)
  return lines.join('\n')
}

/** What each node says about itself and its peers (for a run that did not converge). */
async function diagnose(c: ChaosCluster): Promise<unknown[]> {
  return Promise.all(
    c.nodes.map(async (n) => ({
      node: n.spec.index,
      nodeId: n.spec.nodeId,
      peerId: n.spec.peerId,
      status: await n.api.get('/v1/status', 5_000).catch((e: unknown) => String(e)),
      peers: await n.api.get('/v1/peers', 5_000).catch((e: unknown) => String(e)),
      errorLines: n.errorLines,
      stderr: n.stderrTail(),
    })),
  )
}

/** The environment every daemon of a run gets on top of this process's. */
function daemonEnv(options: Pick<ChaosOptions, 'failpoints' | 'v8Flags'>): Record<string, string> {
  return { ...(options.failpoints && { MESHSYNC_FAILPOINTS: options.failpoints }), ...(options.v8Flags !== undefined && { MESHSYNC_V8_FLAGS: options.v8Flags }) }
}
