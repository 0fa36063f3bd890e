import { performance } from 'node:perf_hooks'

/** Timing of a closed-loop load. */
export interface LoadResult {
  readonly elapsedMs: number
  /** Latency of operation i, in ms. */
  readonly latencies: Float64Array
}

/**
 * Runs operations 0..total-1 from `concurrency` loops, each starting its next operation as soon
 * as its previous one is acknowledged (closed loop). The first error stops every loop and rejects.
 */
export async function closedLoop(total: number, concurrency: number, op: (i: number) => Promise<void>): Promise<LoadResult> {
  const latencies = new Float64Array(total)
  let next = 0
  let failed = false
  const loop = async (): Promise<void> => {
    while (!failed && next < total) {
      const i = next++
      const t0 = performance.now()
      try {
        await op(i)
      } catch (error) {
        failed = true
        throw error
      }
      latencies[i] = performance.now() - t0
    }
  }
  const start = performance.now()
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, loop))
  return { elapsedMs: performance.now() - start, latencies }
}

/** Runs `op` over `items` one at a time; returns the elapsed ms. */
export async function sequential<T>(items: readonly T[], op: (item: T) => Promise<void>): Promise<number> {
  const start = performance.now()
  for (const item of items) await op(item)
  return performance.now() - start
}
