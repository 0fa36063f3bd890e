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
  const start = performance.now()
  await closedLoops(
    Math.min(concurrency, total),
    () => (next < total ? next++ : undefined),
    async (i) => {
      const t0 = performance.now()
      await op(i)
      latencies[i] = performance.now() - t0
    },
  )
  return { elapsedMs: performance.now() - start, latencies }
}

/**
 * `concurrency` closed loops, each running `op(i)` for the next `i` that `take` hands out, until it
 * hands out none. The first error stops every loop and rejects.
 */
async function closedLoops(concurrency: number, take: () => number | undefined, op: (i: number) => Promise<void>): Promise<void> {
  let failed = false
  const loop = async (): Promise<void> => {
    for (let i = take(); i !== undefined && !failed; i = failed ? undefined : take()) {
      try {
        await op(i)
      } catch (error) {
        failed = true
        throw error
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, loop))
}

/** Runs `op` over `items` one at a time; returns the elapsed ms. */
export async function sequential<T>(items: readonly T[], op: (item: T) => Promise<void>): Promise<number> {
  const start = performance.now()
  for (const item of items) await op(item)
  return performance.now() - start
}

/**
 * An unmeasured warm-up: operations 0, 1, 2, ... from `concurrency` closed loops until `minMs` have
 * passed (a loop starts no operation after that); returns how many ran. The first error stops
 * every loop and rejects. Time-based, so both sides of a comparison get the same rule however fast
 * each is; a daemon's code paths (HTTP, store) take thousands of operations to reach the optimized
 * code it runs at in steady state.
 */
export async function warmUp(minMs: number, concurrency: number, op: (i: number) => Promise<void>): Promise<number> {
  const until = performance.now() + minMs
  let next = 0
  await closedLoops(concurrency, () => (performance.now() < until ? next++ : undefined), op)
  return next
}

/** An unmeasured warm-up in rounds: `round(0)`, `round(1)`, ... until `minMs` have passed (at least one). Returns how many ran. */
export async function warmUpRounds(minMs: number, round: (r: number) => Promise<void>): Promise<number> {
  const until = performance.now() + minMs
  let rounds = 0
  do await round(rounds++)
  while (performance.now() < until)
  return rounds
}
