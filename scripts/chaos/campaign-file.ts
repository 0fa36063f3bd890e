import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { percentiles, type ChaosReport, type Percentiles } from './run.ts'

/**
 * The campaign's results file (scripts/chaos/campaign.ts): its settings and one entry per seed
 * run, rewritten (atomically) after every run, so an interrupted campaign resumes where it
 * stopped; and the summary table.
 */

/** What every run of a campaign shares; a results file is only resumed with the same settings. */
export interface CampaignConfig {
  readonly nodes: number
  readonly durationS: number
  readonly netns: boolean
  readonly faultMs: readonly [number, number]
  readonly gapMs: readonly [number, number]
  /** Workload: clients per node and their pause between operations (ms). */
  readonly clientsPerNode: number
  readonly thinkMs: number
}

/** The figures of one run. */
export interface CampaignRun {
  readonly seed: number
  readonly ok: boolean
  readonly failures: readonly string[]
  readonly mode: 'netns' | 'loopback'
  readonly scheduleHash: string
  readonly elapsedS: number
  readonly attempted: number
  readonly acknowledged: number
  /** Writes refused (an error answer), and of those refused because the disk was full. */
  readonly refused: number
  readonly refusedStorageFull: number
  readonly unknown: number
  readonly lost: number | null
  readonly phantoms: number | null
  readonly partialBatches: number | null
  readonly staleReads: number
  readonly divergent: boolean | null
  readonly faults: number
  readonly faultsByKind: Record<string, number>
  /** Per heal and node, ms until the node held what the cluster held at the heal. */
  readonly heal: Percentiles
  /** The same, for the catch-ups that ended before the next fault (absent in results from before it was recorded). */
  readonly healBeforeNextFault?: Percentiles
  /** ms from the final heal until every node held the same vector. */
  readonly finalMs: number | null
  readonly maxRssMB: number
  readonly maxFds: number
  readonly maxDiskMB: number | null
  /** The commit the daemons ran (absent in results from before it was recorded). */
  readonly commit?: string
  /** Daemon sources that differed from that commit when the run started. */
  readonly dirty?: readonly string[]
}

export interface CampaignFile {
  readonly config: CampaignConfig
  readonly runs: CampaignRun[]
}

/** The figures of a run's report. */
export function runFigures(r: ChaosReport): CampaignRun {
  const errors = Object.entries(r.workload.errors)
  const disks = r.resources.flatMap((x) => (x.maxDiskMB !== undefined ? [x.maxDiskMB] : []))
  return {
    seed: r.seed,
    ok: r.ok,
    failures: r.failures.map((f) => f.split('\n')[0] as string),
    mode: r.mode,
    scheduleHash: r.scheduleHash,
    elapsedS: r.elapsedS,
    attempted: r.workload.attempted,
    acknowledged: r.workload.acknowledged,
    refused: r.workload.failed,
    refusedStorageFull: errors.filter(([k]) => k.endsWith(' fail STORAGE_FULL')).reduce((a, [, v]) => a + v, 0),
    unknown: r.workload.unknown,
    lost: r.check?.lost ?? null,
    phantoms: r.check?.phantoms ?? null,
    partialBatches: r.check?.partialBatches ?? null,
    staleReads: r.workload.staleReads,
    divergent: r.check ? r.check.divergent : null,
    faults: r.faults.length,
    faultsByKind: r.faultsByKind,
    heal: r.convergence.afterHeal,
    ...(r.convergence.afterHealBy && { healBeforeNextFault: r.convergence.afterHealBy.beforeNextFault }),
    finalMs: r.convergence.finalMs ?? null,
    maxRssMB: Math.max(0, ...r.resources.map((x) => x.maxRssMB)),
    maxFds: Math.max(0, ...r.resources.map((x) => x.maxFds)),
    maxDiskMB: disks.length > 0 ? Math.max(...disks) : null,
  }
}

/**
 * The results file at `path`: a new one when there is none (or `fresh`), else the one there,
 * which must have been written with the same settings (mixing runs of different settings in one
 * table would make its figures meaningless).
 */
export async function loadCampaign(path: string, config: CampaignConfig, fresh = false): Promise<CampaignFile> {
  let text: string
  try {
    if (fresh) throw Object.assign(new Error('fresh'), { code: 'ENOENT' })
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { config, runs: [] }
    throw error
  }
  let file: CampaignFile
  try {
    file = JSON.parse(text) as CampaignFile
  } catch (error) {
    throw new Error(`${path} is not a campaign results file (${(error as Error).message}); pass --fresh to start a new one`, { cause: error })
  }
  if (!Array.isArray(file.runs) || !isDeepStrictEqual(file.config, JSON.parse(JSON.stringify(config)))) {
    throw new Error(`${path} holds a campaign with other settings (${JSON.stringify(file.config)}, not ${JSON.stringify(config)}); pass --out FILE for another file, or --fresh to start over`)
  }
  return file
}

/** Writes the file whole: a temporary file renamed over it, so an interruption never leaves half a file. */
export async function saveCampaign(path: string, file: CampaignFile): Promise<void> {
  await mkdir(dirname(path), { recursive: true })
  const runs = [...file.runs].sort((a, b) => a.seed - b.seed)
  await writeFile(`${path}.tmp`, `${JSON.stringify({ config: file.config, totals: campaignTotals(runs, 0), runs }, null, 2)}\n`)
  await rename(`${path}.tmp`, path)
}

/** Short names of the fault kinds, for the table. */
const KIND_ABBREV: Readonly<Record<string, string>> = {
  'partition-halves': 'half',
  'isolate-one': 'iso',
  'one-way-cut': 'cut',
  'ring-majorities': 'ring',
  'packet-loss': 'loss',
  'link-down': 'link',
  'disk-full': 'disk',
  'kill9-restart': 'kill',
  sigstop: 'stop',
  'restart-all': 'all',
  'kill-neighbourhood': 'hood',
}

export function kindsCell(byKind: Record<string, number>): string {
  return Object.entries(KIND_ABBREV)
    .filter(([k]) => (byKind[k] ?? 0) > 0)
    .map(([k, a]) => `${a}${byKind[k]}`)
    .join(' ')
}

/** One line of the table. */
export function campaignRow(r: CampaignRun, minFaults: number): string {
  const result = !r.ok ? 'FAIL' : r.faults < minFaults ? 'SHORT' : 'PASS'
  return [
    String(r.seed).padStart(5),
    result.padEnd(6),
    String(r.acknowledged).padStart(7),
    String(r.lost ?? '?').padStart(5),
    String(r.refusedStorageFull).padStart(6),
    String(r.faults).padStart(6),
    kindsCell(r.faultsByKind).padEnd(52),
    `${r.heal.p50}/${r.heal.p99}/${r.heal.max}`.padStart(19),
    (r.healBeforeNextFault ? `${r.healBeforeNextFault.p50}/${r.healBeforeNextFault.p99}` : '-').padStart(13),
    String(r.finalMs ?? 'never').padStart(8),
    String(r.maxRssMB).padStart(7),
    String(r.maxFds).padStart(4),
    String(r.maxDiskMB ?? '-').padStart(7),
    String(r.elapsedS).padStart(5),
  ].join(' ')
}

export const CAMPAIGN_HEADER = [
  ' seed',
  'result',
  '  acked',
  ' lost',
  '  full',
  'faults',
  'faults by kind'.padEnd(52),
  'heal p50/p99/max ms',
  'clean p50/p99',
  'final ms',
  ' rss MB',
  ' fds',
  'disk MB',
  '    s',
].join(' ')

export interface CampaignTotals {
  readonly runs: number
  readonly failed: number[]
  /** Runs with fewer faults than the campaign asks for. */
  readonly short: number[]
  readonly acknowledged: number
  readonly lost: number
  readonly refusedStorageFull: number
  readonly faults: number
  readonly faultsByKind: Record<string, number>
  /** Over all runs: the largest p99 and max of the per-heal convergence. */
  readonly healP99Max: number
  readonly healMax: number
  /** Over the runs that recorded it: the largest p99 of the catch-ups that ended before the next fault. */
  readonly healBeforeNextFaultP99Max: number | null
  /** Final convergence (ms after the final heal) across runs. */
  readonly final: Percentiles
  readonly neverConverged: number[]
}

export function campaignTotals(runs: readonly CampaignRun[], minFaults: number): CampaignTotals {
  const faultsByKind: Record<string, number> = {}
  for (const r of runs) for (const [k, v] of Object.entries(r.faultsByKind)) faultsByKind[k] = (faultsByKind[k] ?? 0) + v
  return {
    runs: runs.length,
    failed: runs.filter((r) => !r.ok).map((r) => r.seed),
    short: runs.filter((r) => r.faults < minFaults).map((r) => r.seed),
    acknowledged: runs.reduce((a, r) => a + r.acknowledged, 0),
    lost: runs.reduce((a, r) => a + (r.lost ?? 0), 0),
    refusedStorageFull: runs.reduce((a, r) => a + r.refusedStorageFull, 0),
    faults: runs.reduce((a, r) => a + r.faults, 0),
    faultsByKind,
    healP99Max: Math.max(0, ...runs.map((r) => r.heal.p99)),
    healMax: Math.max(0, ...runs.map((r) => r.heal.max)),
    healBeforeNextFaultP99Max: runs.some((r) => r.healBeforeNextFault) ? Math.max(0, ...runs.map((r) => r.healBeforeNextFault?.p99 ?? 0)) : null,
    final: percentiles(runs.flatMap((r) => (r.finalMs !== null ? [r.finalMs] : []))),
    neverConverged: runs.filter((r) => r.finalMs === null).map((r) => r.seed),
  }
}

/** The whole summary: header, a row per run (by seed), totals. */
export function campaignTable(runs: readonly CampaignRun[], minFaults: number): string {
  const sorted = [...runs].sort((a, b) => a.seed - b.seed)
  const t = campaignTotals(sorted, minFaults)
  return [
    CAMPAIGN_HEADER,
    ...sorted.map((r) => campaignRow(r, minFaults)),
    `total: ${t.runs} runs, ${t.failed.length} failed ${JSON.stringify(t.failed)}, ${t.short.length} with fewer than ${minFaults} faults ${JSON.stringify(t.short)}; ` +
      `${t.acknowledged} acknowledged writes, ${t.lost} lost, ${t.refusedStorageFull} refused for a full disk; ${t.faults} faults (${kindsCell(t.faultsByKind)}); ` +
      `heal convergence worst p99 ${t.healP99Max} ms, worst max ${t.healMax} ms` +
      (t.healBeforeNextFaultP99Max !== null ? ` (catch-ups that ended before the next fault: worst p99 ${t.healBeforeNextFaultP99Max} ms)` : '') +
      `; final convergence p50 ${t.final.p50} / p99 ${t.final.p99} / max ${t.final.max} ms` +
      (t.neverConverged.length > 0 ? `; never converged: ${JSON.stringify(t.neverConverged)}` : ''),
  ].join('\n')
}
