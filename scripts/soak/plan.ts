import * as prng from 'lib0/prng'
import type { ScheduledFault } from '../chaos/schedule.ts'

/**
 * The pace of a soak run (docs/operations.md, Soak test): every interval is set for a 60-minute
 * run and scaled by `minutes / 60` for a shorter one (floors keep a 3-minute run meaningful), so
 * a short run sees the same number of faults, backups and samples, only faster.
 */
export interface SoakPlan {
  readonly minutes: number
  readonly durationMs: number
  /** How often every daemon is sampled (60 s in an hour). */
  readonly sampleEveryMs: number
  /** How often a backup is taken through a daemon (5 min in an hour). */
  readonly backupEveryMs: number
  /** The faults: a kill -9 and a partition (a SIGSTOP in loopback mode) in turn, 24 in an hour. */
  readonly faults: readonly ScheduledFault[]
  /** Start of the window RSS and fds are compared from (10 min in an hour), and its length (5 min). */
  readonly baselineFromMs: number
  readonly windowMs: number
  /** Nodes never killed: the growth targets judge processes that ran the whole run. */
  readonly witnesses: readonly number[]
}

/** Shortest run whose growth and compaction targets are judged (shorter runs report the figures only). */
export const MIN_JUDGED_MINUTES = 30

export function soakPlan(options: { minutes: number; nodes: number; seed: number; netns: boolean }): SoakPlan {
  const { minutes, nodes, netns } = options
  const scale = minutes / 60
  const durationMs = Math.round(minutes * 60_000)
  const witnesses = [0, 1].filter((i) => i < nodes)
  const victims = Array.from({ length: nodes }, (_, i) => i).filter((i) => !witnesses.includes(i))
  const gap = Math.max(5_000, 150_000 * scale)
  const gen = prng.create(options.seed >>> 0)
  const faults: ScheduledFault[] = []
  // The first fault after a quiet first 10% of the run, the last healed before its end.
  for (let at = Math.max(gap / 2, durationMs / 10); ; at += gap) {
    const index = faults.length
    const kill = index % 2 === 0
    const duration = kill ? Math.max(1_000, 10_000 * scale) : Math.max(3_000, 30_000 * scale)
    if (at + duration > durationMs - gap / 4) break
    if (kill || !netns) {
      const node = kill ? (victims[(index / 2) % victims.length] ?? 0) : prng.uint32(gen, 0, nodes - 1)
      faults.push({ index, kind: kill ? 'kill9-restart' : 'sigstop', at, duration, nodes: [node], groups: [], cuts: [], lossPct: 0 })
      continue
    }
    // A partition into two sides of 2 and 3 nodes, the sides drawn from the seed.
    const order = Array.from({ length: nodes }, (_, i) => i)
    for (let i = order.length - 1; i > 0; i--) {
      const j = prng.uint32(gen, 0, i)
      ;[order[i], order[j]] = [order[j] as number, order[i] as number]
    }
    const side = order.slice(0, Math.floor(nodes / 2)).sort((a, b) => a - b)
    const rest = order.slice(Math.floor(nodes / 2)).sort((a, b) => a - b)
    faults.push({ index, kind: 'partition-halves', at, duration, nodes: [...side, ...rest], groups: [side, rest], cuts: [], lossPct: 0 })
  }
  return {
    minutes,
    durationMs,
    sampleEveryMs: Math.max(3_000, 60_000 * scale),
    backupEveryMs: Math.max(10_000, 300_000 * scale),
    faults,
    baselineFromMs: durationMs / 6,
    windowMs: durationMs / 12,
    witnesses,
  }
}
