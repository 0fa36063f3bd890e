import type { BackupStats } from '../chaos/backups.ts'
import type { CheckResult } from '../chaos/checker.ts'
import type { IndexCheck } from '../chaos/index-check.ts'
import type { FaultEvent } from '../chaos/faults.ts'
import { MIN_JUDGED_MINUTES, type SoakPlan } from './plan.ts'
import type { QueryStats } from './queries.ts'
import type { SoakSample } from './sampler.ts'

/**
 * The soak's targets (docs/operations.md, Soak test) and their verdicts, from what the run
 * measured. Pure: the run gathers the figures, this judges them.
 */

export type Verdict = 'PASS' | 'FAIL' | 'NOT JUDGED'

export interface TargetResult {
  readonly name: string
  readonly verdict: Verdict
  /** The measured figure, for people. */
  readonly figure: string
}

/** A log line at error level or above (pino level >= 50) of one daemon. */
export interface LoggedError {
  readonly node: number
  /** ms since the workload started. */
  readonly t: number
  readonly level: number
  readonly msg: string
  readonly err?: string
  /** Why a fault explains it, when one does. */
  explainedBy?: string
}

/**
 * Error lines a fault may cause, and why. A line is explained only when it matches a pattern
 * here and falls in a window of a fault of one of the kinds (from its injection to `graceMs`
 * after its heal). Empty: no error line is expected from a kill -9, a partition or a SIGSTOP;
 * an entry needs a reason that is not a bug.
 */
export const EXPECTED_ERRORS: readonly { readonly pattern: RegExp; readonly kinds: readonly string[]; readonly graceMs: number; readonly why: string }[] = []

/** Marks each error line a fault explains (see {@link EXPECTED_ERRORS}). */
export function explainErrors(errors: readonly LoggedError[], faults: readonly FaultEvent[], expected = EXPECTED_ERRORS): LoggedError[] {
  return errors.map((e) => {
    for (const x of expected) {
      if (!x.pattern.test(`${e.msg} ${e.err ?? ''}`)) continue
      const fault = faults.find((f) => x.kinds.includes(f.kind) && e.t >= f.injectedAt && e.t <= (f.healedAt ?? Infinity) + x.graceMs)
      if (fault) return { ...e, explainedBy: `${fault.kind} #${fault.index}: ${x.why}` }
    }
    return { ...e }
  })
}

/** Pino JSON lines of a daemon's log at `minLevel` or above, timed from `t0` (ms since the epoch); other lines are skipped. */
export function errorLines(log: string, node: number, t0: number, minLevel = 50): LoggedError[] {
  const out: LoggedError[] = []
  for (const line of log.split('\n')) {
    if (!line.startsWith('{')) continue
    let entry: { level?: unknown; time?: unknown; msg?: unknown; err?: { message?: unknown } }
    try {
      entry = JSON.parse(line) as typeof entry
    } catch {
      continue
    }
    if (typeof entry.level !== 'number' || entry.level < minLevel) continue
    const at = typeof entry.time === 'string' ? Date.parse(entry.time) : typeof entry.time === 'number' ? entry.time : Number.NaN
    out.push({
      node,
      t: Number.isFinite(at) ? at - t0 : -1,
      level: entry.level,
      msg: String(entry.msg ?? ''),
      ...(entry.err?.message !== undefined && { err: String(entry.err.message) }),
    })
  }
  return out
}

export function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined
  const s = [...values].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}

/** Per node whose process ran through both windows: the median of `field` in the baseline window and in the final one. */
export function growthByNode(samples: readonly SoakSample[], plan: Pick<SoakPlan, 'baselineFromMs' | 'windowMs' | 'durationMs'>, field: 'rssBytes' | 'fds'): { node: number; from: number; to: number; growth: number }[] {
  const nodes = [...new Set(samples.map((s) => s.node))].sort((a, b) => a - b)
  const out: { node: number; from: number; to: number; growth: number }[] = []
  for (const node of nodes) {
    const mine = samples.filter((s) => s.node === node && s.t >= plan.baselineFromMs)
    const pids = new Set(mine.map((s) => s.pid))
    // A node killed (or down) after the baseline started is a new process: not comparable.
    if (pids.size !== 1 || pids.has(null)) continue
    const values = (from: number, to: number): number[] => mine.filter((s) => s.t >= from && s.t < to && s[field] !== null).map((s) => s[field] as number)
    const from = median(values(plan.baselineFromMs, plan.baselineFromMs + plan.windowMs))
    const to = median(values(plan.durationMs - plan.windowMs, Infinity))
    if (from === undefined || to === undefined || from === 0) continue
    out.push({ node, from, to, growth: to / from - 1 })
  }
  return out
}

/**
 * Most RSS and fd growth allowed after the baseline window. LevelDB may hold at most half again
 * its fully compacted size, beyond the slack it keeps by design: a log of up to its 4 MiB write
 * buffer and up to four 4 MiB level-0 tables before it compacts them (daemon/storage/level-kv-store.ts).
 */
export const LIMITS = { growth: 0.1, garbage: 0.5, slackBytes: 24 * 1024 * 1024 } as const

/** Whether a LevelDB of `before` bytes on disk, `after` once fully compacted, keeps up (see {@link LIMITS}). */
export function compactionKeepsUp(before: number, after: number): boolean {
  return before - after <= Math.max(LIMITS.garbage * after, LIMITS.slackBytes)
}

/** `ms` as minutes or seconds, for a target's name. */
function span(ms: number): string {
  return ms >= 120_000 ? `${Math.round(ms / 60_000)} minutes` : `${Math.round(ms / 1000)} s`
}

export interface JudgeInput {
  readonly plan: SoakPlan
  readonly samples: readonly SoakSample[]
  readonly check: CheckResult | undefined
  readonly staleReads: number
  readonly converged: boolean
  readonly crashes: readonly string[]
  readonly pendingYjs: number
  readonly errors: readonly LoggedError[]
  /** Per node, LevelDB's size on disk at the end and after a full compaction of it. */
  readonly compaction: readonly { readonly node: number; readonly beforeBytes: number; readonly afterBytes: number }[]
  readonly backups: BackupStats | undefined
  readonly queries: QueryStats
  readonly indexes: IndexCheck | undefined
}

const pct = (x: number): string => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}%`
const mib = (b: number): string => `${(b / 1024 / 1024).toFixed(1)} MiB`

export function judge(input: JudgeInput): TargetResult[] {
  const judged = input.plan.minutes >= MIN_JUDGED_MINUTES
  const results: TargetResult[] = []
  const baseline = span(input.plan.baselineFromMs)
  for (const [name, field, show] of [
    [`RSS grows < 10% after the first ${baseline}`, 'rssBytes', mib],
    [`open fds grow < 10% after the first ${baseline}`, 'fds', String],
  ] as const) {
    const g = growthByNode(input.samples, input.plan, field)
    const figure = g.length === 0 ? 'no node ran through both windows' : g.map((x) => `n${x.node} ${show(x.from)} -> ${show(x.to)} (${pct(x.growth)})`).join(', ')
    const ok = g.length > 0 && g.every((x) => x.growth < LIMITS.growth)
    results.push({ name, verdict: judged ? (ok ? 'PASS' : 'FAIL') : 'NOT JUDGED', figure })
  }
  const comp = input.compaction
  results.push({
    name: `LevelDB size tracks live data (on disk, at most ${LIMITS.garbage * 100}% or ${mib(LIMITS.slackBytes)} over its fully compacted size)`,
    verdict: judged ? (comp.length > 0 && comp.every((c) => compactionKeepsUp(c.beforeBytes, c.afterBytes)) ? 'PASS' : 'FAIL') : 'NOT JUDGED',
    figure: comp.length === 0 ? 'not measured' : comp.map((c) => `n${c.node} ${mib(c.beforeBytes)} on disk, ${mib(c.afterBytes)} compacted`).join(', '),
  })
  const c = input.check
  results.push({
    name: '0 acknowledged writes lost (every one on every node)',
    verdict: c && c.lost === 0 && c.phantoms === 0 && c.partialBatches === 0 && input.staleReads === 0 ? 'PASS' : 'FAIL',
    figure: c ? `${c.acknowledged} acknowledged, ${c.lost} lost, ${c.phantoms} phantoms, ${c.partialBatches} partial batches, ${input.staleReads} stale reads` : 'not checked (the run did not get that far)',
  })
  results.push({
    name: 'the nodes converge to one state after the last heal',
    verdict: input.converged && c !== undefined && !c.divergent ? 'PASS' : 'FAIL',
    figure: !input.converged ? 'no convergence' : c?.divergent ? `divergent: ${c.divergenceSamples[0] ?? ''}` : `identical (${c?.fingerprints[0] ?? '?'})`,
  })
  const unexplained = input.errors.filter((e) => e.explainedBy === undefined)
  const first = unexplained[0]
  results.push({
    name: '0 errors logged that no injected fault explains (level >= 50), no crash',
    verdict: unexplained.length === 0 && input.crashes.length === 0 && input.pendingYjs === 0 ? 'PASS' : 'FAIL',
    figure:
      `${input.errors.length} error lines, ${unexplained.length} unexplained, ${input.crashes.length} crashes, ${input.pendingYjs} pending Yjs updates` +
      (first ? `; first: node ${first.node} at ${(first.t / 1000).toFixed(1)} s: ${first.msg}${first.err ? `: ${first.err}` : ''}` : ''),
  })
  const b = input.backups
  results.push({
    name: 'every backup taken verifies',
    verdict: b && b.corrupt.length === 0 && b.verified > 0 ? 'PASS' : 'FAIL',
    figure: b ? `${b.attempted} asked, ${b.taken.files + b.taken.entities} taken, ${b.verified} verified, ${b.corrupt.length} corrupt${b.corrupt[0] ? `: ${b.corrupt[0]}` : ''}` : 'none',
  })
  const q = input.queries
  const refused = Object.values(q.refused).reduce((a, b) => a + b, 0)
  results.push({
    name: 'queries answer, with only matching entities',
    verdict: q.answered > 0 && q.wrong === 0 && q.serverErrors === 0 && refused === 0 ? 'PASS' : 'FAIL',
    figure: `${q.answered} answered, ${q.wrong} with entities that do not match, ${q.serverErrors} 5xx, ${refused} refused, ${q.notAnswered} not answered (node down)${q.samples[0] ? `; ${q.samples[0]}` : ''}`,
  })
  const ix = input.indexes
  results.push({
    name: 'every secondary index agrees with a full scan',
    verdict: ix && ix.checked > 0 && ix.mismatches.length === 0 ? 'PASS' : 'FAIL',
    figure: ix ? `${ix.checked} checked, ${ix.mismatches.length} disagree${ix.mismatches[0] ? `: ${ix.mismatches[0]}` : ''}` : 'not checked',
  })
  return results
}
