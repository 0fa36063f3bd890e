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

  it('a tick picks at most fanout peers, those not synced or picked for longest first; busy and recently synced peers are skipped', () => {
    const due = new AntiEntropyDue(10_000, { fanout: 2, random: () => 0.5 })
    const peers = ['a', 'b', 'c', 'd', 'e']
    due.synced('a', 100)
    due.synced('b', 50)
    // At 6_000: a and b were synced more than half a period ago; c, d, e never: they go first.
    expect(due.pick(peers, 6_000)).toEqual({ picked: ['c', 'd'], skipped: 0 })
    expect(due.pick(peers, 16_000, (p) => p === 'e')).toEqual({ picked: ['b', 'a'], skipped: 1 })
    due.synced('c', 20_000)
    // c was just synced (not due); e has waited longest; then d (picked at 6_000).
    expect(due.pick(peers, 21_000)).toEqual({ picked: ['e', 'd'], skipped: 1 })
  })

  it('relaying news goes to at most fanout peers, and counts as their turn', () => {
    const due = new AntiEntropyDue(10_000, { fanout: 2, random: () => 0.5 })
    expect(due.relayTargets(['a', 'b', 'c'], 0)).toEqual(['a', 'b'])
    expect(due.pick(['a', 'b', 'c'], 1_000).picked).toEqual(['c', 'a'])
  })

  it('whatever the number of peers and the inbound sessions, a tick picks at most fanout peers and every peer is synced or picked within ceil(peers / fanout) ticks', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (n, fanout, rngSeed) => {
        let state = rngSeed
        const random = (): number => {
          state = (Math.imul(state, 1103515245) + 12345) >>> 0
          return state / 2 ** 32
        }
        const interval = 1000
        const due = new AntiEntropyDue(interval, { fanout, random })
        const peers = Array.from({ length: n }, (_, i) => `p${i}`)
        const touched = new Map(peers.map((p) => [p, 0]))
        const bound = Math.ceil(n / fanout) * 1.25 * interval
        let now = 0
        let mostPicked = 0
        let longestWait = 0
        for (let tick = 0; tick < 200; tick++) {
          now += interval * (0.75 + random() * 0.5)
          // Peers start sessions too (they succeed at once here).
          for (const p of peers) {
            if (random() < 0.2) {
              due.synced(p, now - 1)
              touched.set(p, now - 1)
            }
          }
          const { picked } = due.pick(peers, now)
          mostPicked = Math.max(mostPicked, new Set(picked).size, picked.length)
          for (const p of picked) {
            due.synced(p, now)
            touched.set(p, now)
          }
          for (const t of touched.values()) longestWait = Math.max(longestWait, now - t)
        }
        expect(mostPicked).toBe(Math.min(fanout, n))
        expect(longestWait).toBeLessThanOrEqual(bound + 1e-6)
      }),
      { seed: SEED, numRuns: 100 },
    )
  })
})
