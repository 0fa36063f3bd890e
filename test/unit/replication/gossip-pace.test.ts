import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { GossipPace, PACE_RATE_HALF_LIFE_MS } from '../../../daemon/replication/gossip-pace.ts'

/**
 * The spacing between gossip publishes follows the local change rate. A simulated clock drives the
 * replicator's use of it: a commit with no publish pending schedules one `waitMs` later (at once
 * when <= 0), and everything committed until then goes in that message.
 */

interface Message {
  readonly at: number
  /** Commit times of the changes it carries. */
  readonly changes: readonly number[]
}

function simulate(pace: GossipPace, commits: readonly number[]): Message[] {
  const messages: Message[] = []
  let outbox: number[] = []
  let due: number | undefined
  const publish = (at: number): void => {
    pace.published(at)
    messages.push({ at, changes: outbox })
    outbox = []
    due = undefined
  }
  for (const at of commits) {
    if (due !== undefined && due <= at) publish(due)
    outbox.push(at)
    pace.committed(1, at)
    if (due === undefined) due = at + Math.max(0, pace.waitMs(at))
  }
  if (due !== undefined) publish(due)
  return messages
}

/** Commit times of `count` changes, one every `everyMs` from `from`. */
const steady = (count: number, everyMs: number, from = 0): number[] => Array.from({ length: count }, (_, i) => from + i * everyMs)

describe('gossip pace', () => {
  it('at 50 changes a second, publishes every change at once in a message of its own', () => {
    const messages = simulate(new GossipPace(5, 20), steady(200, 20))
    expect(messages).toHaveLength(200)
    for (const m of messages) expect(m.changes).toEqual([m.at])
  })

  it('up to one change per least spacing (200 a second at 5 ms), stays at the least spacing', () => {
    const pace = new GossipPace(5, 20)
    const messages = simulate(pace, steady(400, 5.5))
    expect(pace.spacingMs(400 * 5.5)).toBe(5)
    const delays = messages.flatMap((m) => m.changes.map((c) => m.at - c))
    expect(Math.max(...delays)).toBeLessThanOrEqual(5)
  })

  it('under a sustained 1,000 changes a second, sends at most one message per most spacing, and no change waits longer than it', () => {
    const pace = new GossipPace(5, 20)
    const messages = simulate(pace, steady(2000, 1))
    // 2 s of load: about 100 messages at 20 ms; a ramp of a few shorter spacings at the start.
    expect(messages.length).toBeGreaterThanOrEqual(95)
    expect(messages.length).toBeLessThanOrEqual(115)
    const steadyPart = messages.filter((m) => m.at > 200)
    for (const [i, m] of steadyPart.entries()) if (i > 0) expect(m.at - (steadyPart[i - 1] as Message).at).toBeCloseTo(20, 6)
    const delays = messages.flatMap((m) => m.changes.map((c) => m.at - c))
    expect(Math.max(...delays)).toBeLessThanOrEqual(20)
    // With a fixed 5 ms spacing the same load takes four times as many messages.
    expect(simulate(new GossipPace(5, 5), steady(2000, 1)).length).toBeGreaterThanOrEqual(395)
  })

  it('comes back to the least spacing a few half-lives after the load stops', () => {
    const pace = new GossipPace(5, 20)
    simulate(pace, steady(1000, 1))
    expect(pace.spacingMs(1000)).toBe(20)
    expect(pace.spacingMs(1000 + 5 * PACE_RATE_HALF_LIFE_MS)).toBe(5)
    // A change after that quiet spell goes out at once.
    pace.committed(1, 1000 + 5 * PACE_RATE_HALF_LIFE_MS)
    expect(pace.waitMs(1000 + 5 * PACE_RATE_HALF_LIFE_MS)).toBeLessThanOrEqual(0)
  })

  it('measures the rate it is given', () => {
    const pace = new GossipPace(5, 20)
    simulate(pace, steady(1000, 2))
    // 0.5 changes per ms, sampled right after a commit: within the sawtooth of one change.
    const rate = pace.rate(999 * 2)
    expect(rate).toBeGreaterThan(0.45)
    expect(rate).toBeLessThan(0.55)
  })

  it('with a least spacing of 0, publishes every commit at once whatever the rate', () => {
    const messages = simulate(new GossipPace(0, 20), steady(500, 0.1))
    expect(messages).toHaveLength(500)
  })

  it('with a most spacing below the least, keeps the least spacing (a fixed pace)', () => {
    const pace = new GossipPace(300, 20)
    simulate(pace, steady(1000, 0.5))
    expect(pace.spacingMs(500)).toBe(300)
  })

  it('for any commit times, delays no change by more than the most spacing, and never publishes closer than the least', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 40, noNaN: true }), { minLength: 1, maxLength: 400 }),
        fc.integer({ min: 1, max: 10 }),
        fc.integer({ min: 0, max: 40 }),
        (gaps, minMs, extra) => {
          let t = 0
          const commits = gaps.map((g) => (t += g))
          const messages = simulate(new GossipPace(minMs, minMs + extra), commits)
          expect(messages.reduce((n, m) => n + m.changes.length, 0)).toBe(commits.length)
          for (const m of messages) for (const c of m.changes) expect(m.at - c).toBeLessThanOrEqual(minMs + extra + 1e-9)
          for (let i = 1; i < messages.length; i++) expect((messages[i] as Message).at - (messages[i - 1] as Message).at).toBeGreaterThanOrEqual(minMs - 1e-9)
        },
      ),
      { seed: 20261128, numRuns: 300 },
    )
  })
})
