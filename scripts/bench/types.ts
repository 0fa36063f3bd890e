import type { ProfileSummary, TimeWindow } from './profile.ts'
import { summarize, type Summary } from './stats.ts'

/** Settings shared by every benchmark of one `npm run bench`. */
export interface BenchOptions {
  /** Measured runs per benchmark (each with its own baseline). */
  readonly runs: number
  /** Bigger workloads. */
  readonly full: boolean
  /** Where temp data dirs and databases are made. */
  readonly baseDir: string
  /** When set, one extra (unmeasured) pass runs the daemon under `--cpu-prof` into this directory. */
  readonly cpuProfDir?: string
  readonly log: (message: string) => void
}

/** A target a figure's median is held to: at least `atLeast`, or at most `atMost`. */
export interface Target {
  readonly atLeast?: number
  readonly atMost?: number
  readonly met: boolean
}

/** One reported figure, summarized over the runs. */
export interface Figure {
  readonly label: string
  readonly unit: string
  /** Absent only when `unavailable` says why the figure could not be measured. */
  readonly summary?: Summary
  /** Why there is no number (e.g. a peer system that does not install here); never a made-up value. */
  readonly unavailable?: string
  /** For ratios: the median must reach `atLeast` (or stay under `atMost`). */
  readonly target?: Target
}

/** What a benchmark hands to the report; produced only after its results were checked. */
export interface BenchResult {
  readonly name: string
  readonly title: string
  readonly params: Readonly<Record<string, unknown>>
  readonly figures: readonly Figure[]
  readonly profile?: ProfileSummary
}

export interface Benchmark {
  readonly name: string
  readonly title: string
  run(options: BenchOptions): Promise<BenchResult>
}

/** A figure whose median is checked against a minimum. */
export function ratioFigure(label: string, summary: Summary, atLeast: number): Figure {
  return { label, unit: 'x', summary, target: { atLeast, met: summary.median >= atLeast } }
}

/** A figure whose median is checked against a maximum. */
export function ratioAtMostFigure(label: string, summary: Summary, atMost: number): Figure {
  return { label, unit: 'x', summary, target: { atMost, met: summary.median <= atMost } }
}

/** A figure that could not be measured, with the reason (shown in the table instead of a number). */
export function unavailableFigure(label: string, unit: string, reason: string, target?: Omit<Target, 'met'>): Figure {
  return { label, unit, unavailable: reason, ...(target && { target: { ...target, met: false } }) }
}

/** What one measured pass (one side of one run) produced. */
export interface PassMeasure {
  readonly opsPerSec: number
  /** CPU of the process doing the writes (daemon, or the bench itself for classic-level), all threads, per op. */
  readonly cpuUsPerOp: number | null
  /** CPU of the bench's HTTP client per op (daemon passes only). */
  readonly clientCpuUsPerOp?: number | null
  /** The timed span on the monotonic clock (to cut a CPU profile down to it). */
  readonly window: TimeWindow
}

/** A figure over the runs, left out when a run could not measure it (e.g. no /proc). */
export function optionalFigure(label: string, unit: string, values: readonly (number | null | undefined)[]): Figure[] {
  if (values.length === 0 || values.some((v) => v === null || v === undefined)) return []
  return [{ label, unit, summary: summarize(values as number[]) }]
}
