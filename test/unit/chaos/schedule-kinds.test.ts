import { describe, expect, it } from 'vitest'
import { makeSchedule, NEIGHBOURHOOD_MIN_NODES, possibleKinds } from '../../../scripts/chaos/schedule.ts'

describe('the kill-neighbourhood fault', () => {
  it('is possible only in a cluster of 7 or more, where a neighbourhood is not the whole cluster', () => {
    expect(NEIGHBOURHOOD_MIN_NODES).toBe(7)
    expect(possibleKinds(true, true, 5)).not.toContain('kill-neighbourhood')
    expect(possibleKinds(false, false, 9)).toContain('kill-neighbourhood')
  })

  it('leaves the schedules of 5-node runs as they were, and names one centre node in a 9-node run', () => {
    const five = makeSchedule({ seed: 6, nodes: 5, durationMs: 170_000, netns: true })
    expect(five.some((f) => f.kind === 'kill-neighbourhood')).toBe(false)
    // The 5-node schedule of seed 6 is the one the CI chaos run was tuned on: 24 faults.
    expect(five).toHaveLength(24)
    const nine = makeSchedule({ seed: 5, nodes: 9, durationMs: 90_000, netns: false, kinds: ['kill9-restart', 'sigstop', 'kill-neighbourhood'] })
    const hoods = nine.filter((f) => f.kind === 'kill-neighbourhood')
    expect(hoods.length).toBeGreaterThanOrEqual(1)
    for (const f of hoods) {
      expect(f.nodes).toHaveLength(1)
      expect(f.nodes[0]).toBeGreaterThanOrEqual(0)
      expect(f.nodes[0]).toBeLessThan(9)
    }
  })
})
