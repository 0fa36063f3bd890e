import { describe, expect, it } from 'vitest'
import type { FaultEvent } from '../../../scripts/chaos/faults.ts'
import { splitHealSamples } from '../../../scripts/chaos/run.ts'

const event = (index: number, kind: string, injectedAt: number): FaultEvent => ({ index, kind, nodes: [0], detail: '', injectedAt })

describe('splitHealSamples', () => {
  it('splits catch-up samples by fault kind and by whether the next fault was injected before they ended', () => {
    const events = [event(0, 'kill', 1_000), event(1, 'partition', 10_000), event(2, 'pause', 20_000)]
    const split = splitHealSamples(
      [
        // the kill healed at 5 s: 4 s and 5 s end before the partition at 10 s, 6 s runs into it
        { kind: 'kill', fault: 0, node: 0, healedAt: 5_000, ms: 4_000 },
        { kind: 'kill', fault: 0, node: 0, healedAt: 5_000, ms: 5_000 },
        { kind: 'kill', fault: 0, node: 0, healedAt: 5_000, ms: 6_000 },
        // the partition healed at 15 s, the pause came at 20 s
        { kind: 'partition', fault: 0, node: 0, healedAt: 15_000, ms: 300 },
        { kind: 'partition', fault: 0, node: 0, healedAt: 15_000, ms: 7_000 },
        // after the last fault nothing can cut in
        { kind: 'pause', fault: 0, node: 0, healedAt: 25_000, ms: 40_000 },
      ],
      events,
    )
    expect(split.kind).toEqual({
      kill: { n: 3, p50: 5_000, p99: 6_000, max: 6_000 },
      partition: { n: 2, p50: 300, p99: 7_000, max: 7_000 },
      pause: { n: 1, p50: 40_000, p99: 40_000, max: 40_000 },
    })
    expect(split.beforeNextFault).toEqual({ n: 4, p50: 4_000, p99: 40_000, max: 40_000 })
    expect(split.intoNextFault).toEqual({ n: 2, p50: 6_000, p99: 7_000, max: 7_000 })
  })
})
