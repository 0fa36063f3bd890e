import { describe, expect, it } from 'vitest'
import { AllReceiversTracker } from '../../../scripts/bench/latency-tracker.ts'

describe('AllReceiversTracker', () => {
  it('gives, per message in key order, the latency until the first receiver and until the last one saw it', async () => {
    const tracker = new AllReceiversTracker(3)
    tracker.sent('a', 100)
    tracker.sent('b', 200)
    tracker.seen('a', 2, 109)
    tracker.seen('b', 1, 203)
    tracker.seen('a', 1, 104)
    tracker.seen('a', 1, 150) // a receiver's repeat does not count
    tracker.seen('b', 2, 204)
    tracker.seen('a', 3, 112)
    tracker.seen('x', 1, 300) // never sent: ignored
    tracker.seen('b', 3, 230)
    expect(await tracker.collect(['b', 'a'], 1000)).toEqual({ first: [3, 4], all: [30, 12] })
  })

  it('fails when a message is not seen by every receiver in time, naming it', async () => {
    const tracker = new AllReceiversTracker(2)
    tracker.sent('late', 0)
    tracker.seen('late', 1, 5)
    await expect(tracker.collect(['late'], 30)).rejects.toThrow(/1 of 1 messages not seen by all 2 receivers.*late \(seen by 1\)/)
  })
})
