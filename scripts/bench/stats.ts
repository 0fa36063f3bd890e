/** Summaries of repeated measurements. */

/** Median, min and max of one figure over the runs of a benchmark. */
export interface Summary {
  readonly median: number
  readonly min: number
  readonly max: number
  /** Every run's value, in run order. */
  readonly runs: readonly number[]
}

/** Median (mean of the two middle values for an even count), min and max. */
export function summarize(values: readonly number[]): Summary {
  if (values.length === 0) throw new Error('summarize: no values')
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  const median = sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
  return { median, min: sorted[0] as number, max: sorted.at(-1) as number, runs: [...values] }
}

/** The p-th percentile (0..100) by nearest rank; `sorted` must be ascending. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) throw new Error('percentile: no values')
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number
}

/** Median and 99th percentile (nearest rank) of latencies in any order. */
export function p50p99(values: ArrayLike<number>): { p50: number; p99: number } {
  const sorted = Float64Array.from(values).sort()
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) }
}

/** Operations per second. */
export function rate(count: number, elapsedMs: number): number {
  return count / (elapsedMs / 1000)
}
