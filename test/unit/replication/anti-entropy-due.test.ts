import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { AntiEntropyDue } from '../../../daemon/replication/anti-entropy-due.ts'

const SEED = Number(process.env.MESHSYNC_SEED ?? 1337)

/**
 * Two nodes of a pair, each with its own jittered periodic timer (0.75-1.25 of the interval, as in
 * the replicator). At a tick a node starts a session when its schedule says the peer is due; a
 * session lasts `sessionMs` and, when it succeeds, both sides record it with its start time.
 * Returns when sessions started.
 */
function simulate(options: { intervalMs: number; periods: number; sessionMs: number; jitter: () => number; schedule: (n: number) => { due(now: number): boolean; synced(startedAt: number): void } }): number[] {
  const { intervalMs, periods, sessionMs, jitter } = options
  const sides = [options.schedule(0), options.schedule(1)]
  const nextTick = [intervalMs * jitter(), intervalMs * jitter()]
  const starts: number[] = []
  let busyUntil = -Infinity
  const end = intervalMs * periods
  for (;;) {
    const side = nextTick[0]! <= nextTick[1]! ? 0 : 1
    const now = nextTick[side]!
    if (now > end) break
    // A session in progress (either side's) counts as this period's, as in the replicator.
    if (now >= busyUntil && sides[side]!.due(now)) {
      starts.push(now)
      busyUntil = now + sessionMs
      for (const s of sides) s.synced(now)
    }
    nextTick[side] = now + intervalMs * jitter()
  }
  return starts
}

function dueSchedule(intervalMs: number): (n: number) => { due(now: number): boolean; synced(startedAt: number): void } {
  return () => {
    const due = new AntiEntropyDue(intervalMs)
    return { due: (now) => due.due(['peer'], now).length === 1, synced: (at) => due.synced('peer', at) }
  }
}

const everyTick = (): { due(): boolean; synced(): void } => ({ due: () => true, synced: () => undefined })

describe('AntiEntropyDue', () => {
  it('a pair syncs about once per period instead of twice, and never goes longer than the longest jittered period without a session', () => {
    fc.assert(
      fc.property(fc.integer({ min: 100, max: 60_000 }), fc.double({ min: 0, max: 0.2, noNaN: true }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (intervalMs, sessionShare, rngSeed) => {
        let state = rngSeed
        const jitter = (): number => {
          state = (Math.imul(state, 1103515245) + 12345) >>> 0
          return 0.75 + (state / 2 ** 32) * 0.5
        }
        const periods = 400
        const sessionMs = intervalMs * sessionShare
        const starts = simulate({ intervalMs, periods, sessionMs, jitter, schedule: dueSchedule(intervalMs) })
        let longest = starts[0]!
        for (let i = 1; i < starts.length; i++) longest = Math.max(longest, starts[i]! - starts[i - 1]!)
        expect(longest).toBeLessThanOrEqual(1.25 * intervalMs + 1e-6)
        const perPeriod = starts.length / periods
        expect(perPeriod).toBeGreaterThanOrEqual(0.8)
        expect(perPeriod).toBeLessThan(1.35)
      }),
      { seed: SEED, numRuns: 60 },
    )
  })

  it('without it (every tick starts a session) the same pair syncs twice per period', () => {
    let state = SEED
    const jitter = (): number => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0
      return 0.75 + (state / 2 ** 32) * 0.5
    }
    const starts = simulate({ intervalMs: 1000, periods: 400, sessionMs: 5, jitter, schedule: everyTick })
    expect(starts.length / 400).toBeGreaterThan(1.9)
  })

  it('skips a peer synced less than half a period ago, by either side; a later session is what counts', () => {
    const due = new AntiEntropyDue(10_000)
    expect(due.due(['a', 'b'], 0)).toEqual(['a', 'b'])
    due.synced('a', 1_000)
    due.synced('a', 500) // an older session that ended later does not move it back
    expect(due.due(['a', 'b'], 5_999)).toEqual(['b'])
    expect(due.due(['a', 'b'], 6_000)).toEqual(['a', 'b'])
  })

  it('forgets a peer that is no longer connected: back, it is due at once', () => {
    const due = new AntiEntropyDue(10_000)
    due.synced('a', 1_000)
    expect(due.due(['b'], 2_000)).toEqual(['b'])
    expect(due.due(['a', 'b'], 2_001)).toEqual(['a', 'b'])
  })
})
