import { mkdir, writeFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import type { BenchEnvironment } from './env.ts'
import type { BenchResult, Figure, Target } from './types.ts'

/** A benchmark that threw (a failed check included): reported, and the bench exits non-zero. */
export interface BenchFailure {
  readonly name: string
  readonly title: string
  readonly error: string
}

export type Outcome = { readonly ok: true; readonly result: BenchResult } | { readonly ok: false; readonly failure: BenchFailure }

/** File-name-safe form of an ISO 8601 timestamp (`:` is not allowed everywhere): 2026-01-02T03-04-05.678Z. */
export function fileStamp(date: Date): string {
  return date.toISOString().replaceAll(':', '-')
}

/**
 * Writes one JSON file per benchmark, `<dir>/<stamp>-<name>.json` (its parameters, figures with
 * every run, profile), and the run's summary, `<dir>/<stamp>.json`: the table as data (each
 * benchmark's figures with median, min, max and target, or why it failed) and the targets met and
 * missed, so that two runs compare file to file. Returns the paths, the summary's first.
 */
export async function writeResults(
  dir: string,
  date: Date,
  environment: BenchEnvironment,
  options: Readonly<Record<string, unknown>>,
  outcomes: readonly Outcome[],
): Promise<string[]> {
  await mkdir(dir, { recursive: true })
  const written: string[] = []
  for (const outcome of outcomes) {
    const name = outcome.ok ? outcome.result.name : outcome.failure.name
    const file = join(dir, `${fileStamp(date)}-${name}.json`)
    const body = {
      benchmark: name,
      date: date.toISOString(),
      ok: outcome.ok,
      options,
      environment,
      ...(outcome.ok ? { result: outcome.result } : { error: outcome.failure.error }),
    }
    await writeFile(file, `${JSON.stringify(body, null, 2)}\n`)
    written.push(file)
  }
  const summaryFile = join(dir, `${fileStamp(date)}.json`)
  await writeFile(summaryFile, `${JSON.stringify(runSummary(date, environment, options, outcomes, written), null, 2)}\n`)
  return [summaryFile, ...written]
}

/** One figure of the run summary: the median, min and max over the runs, its target and verdict. */
export interface SummaryFigure {
  readonly label: string
  readonly unit: string
  readonly median?: number
  readonly min?: number
  readonly max?: number
  readonly unavailable?: string
  readonly target?: Target
}

/** What `<stamp>.json` holds. */
export interface RunSummary {
  readonly date: string
  readonly environment: BenchEnvironment
  readonly options: Readonly<Record<string, unknown>>
  /** Targets met, and those missed over every benchmark (an unmeasured target and a failed benchmark count as missed). */
  readonly targets: { readonly met: number; readonly missed: readonly string[] }
  readonly benchmarks: readonly (
    | { readonly name: string; readonly ok: true; readonly file: string; readonly figures: readonly SummaryFigure[] }
    | { readonly name: string; readonly ok: false; readonly file: string; readonly error: string }
  )[]
}

export function runSummary(date: Date, environment: BenchEnvironment, options: Readonly<Record<string, unknown>>, outcomes: readonly Outcome[], files: readonly string[]): RunSummary {
  let met = 0
  const missed: string[] = []
  const benchmarks = outcomes.map((outcome, i) => {
    const file = basename(files[i] ?? '')
    if (!outcome.ok) {
      missed.push(`${outcome.failure.name}: failed`)
      return { name: outcome.failure.name, ok: false as const, file, error: outcome.failure.error }
    }
    const figures = outcome.result.figures.map((f): SummaryFigure => {
      if (f.target?.met === true && f.summary !== undefined) met++
      else if (f.target) missed.push(`${outcome.result.name}: ${f.label}`)
      return {
        label: f.label,
        unit: f.unit,
        ...(f.summary && { median: f.summary.median, min: f.summary.min, max: f.summary.max }),
        ...(f.unavailable !== undefined && { unavailable: f.unavailable }),
        ...(f.target && { target: f.target }),
      }
    })
    return { name: outcome.result.name, ok: true as const, file, figures }
  })
  return { date: date.toISOString(), environment, options, targets: { met, missed }, benchmarks }
}

/** The human-readable table: one row per figure, median [min .. max] over the runs. */
export function formatTable(outcomes: readonly Outcome[]): string {
  const rows: string[][] = [['benchmark', 'figure', 'median', 'min', 'max', 'unit', 'target']]
  for (const outcome of outcomes) {
    if (!outcome.ok) {
      rows.push([outcome.failure.name, 'FAILED', '', '', '', '', outcome.failure.error.split('\n')[0]?.slice(0, 80) ?? ''])
      continue
    }
    outcome.result.figures.forEach((figure, i) => {
      const s = figure.summary
      const name = i === 0 ? outcome.result.name : ''
      if (s === undefined) rows.push([name, figure.label, 'n/a', '', '', figure.unit, `${targetCell(figure)} ${clip(figure.unavailable ?? '', 110)}`.trim()])
      else rows.push([name, figure.label, fmt(s.median, figure), fmt(s.min, figure), fmt(s.max, figure), figure.unit, targetCell(figure)])
    })
  }
  const widths = rows[0]?.map((_, col) => Math.max(...rows.map((r) => (r[col] ?? '').length))) ?? []
  const numeric = new Set([2, 3, 4])
  const line = (r: readonly string[]): string =>
    r.map((cell, col) => (numeric.has(col) ? cell.padStart(widths[col] ?? 0) : cell.padEnd(widths[col] ?? 0))).join('  ').trimEnd()
  const sep = widths.map((w) => '-'.repeat(w)).join('  ')
  return [line(rows[0] ?? []), sep, ...rows.slice(1).map(line)].join('\n')
}

/** Top self-time functions of a profile, as printed lines. */
export function formatProfile(result: BenchResult): string {
  const profile = result.profile
  if (!profile) return ''
  const span = profile.windowed ? 'measured load only' : 'whole process, startup included'
  const whose = profile.subject ?? 'the daemon'
  const lines = [`top self time of ${whose} under ${result.name} (${profile.totalMs} ms sampled, ${span}; ${profile.file}):`]
  for (const e of profile.top) lines.push(`  ${e.selfPct.toFixed(1).padStart(5)}%  ${e.selfMs.toFixed(0).padStart(7)} ms  ${e.function}  ${e.location}`)
  return lines.join('\n')
}

function fmt(n: number, figure: Figure): string {
  if (figure.unit === 'x') return n.toFixed(3)
  if (figure.unit === 'ms') return n.toFixed(n < 10 ? 2 : 1)
  if (figure.unit === 'µs/op') return n.toFixed(0)
  if (figure.unit === 's') return n.toFixed(2)
  if (figure.unit === 'writes/s' && n < 1000) return n.toFixed(1)
  return Math.round(n).toLocaleString('en-US')
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`
}

function targetCell(figure: Figure): string {
  const t = figure.target
  if (!t) return ''
  // Ratios are bounded in x; an absolute target (seconds, MB) in the figure's own unit.
  const unit = figure.unit === 'x' ? 'x' : ` ${figure.unit}`
  const bound = t.atLeast !== undefined ? `>= ${t.atLeast}${unit}` : `<= ${t.atMost}${unit}`
  return `${bound} ${figure.summary === undefined ? 'UNMEASURED' : t.met ? 'met' : 'MISSED'}`
}
