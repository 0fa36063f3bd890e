import { describe, expect, it } from 'vitest'
import { runChaos } from '../../../scripts/chaos/run.ts'

describe('a fixed chaos schedule', () => {
  it('with a disk-full fault is refused before anything starts when there are no data disks', async () => {
    const lines: string[] = []
    const run = runChaos({
      nodes: 3,
      durationS: 5,
      seed: 1,
      netns: false,
      log: (line) => lines.push(line),
      schedule: [{ index: 0, kind: 'disk-full', at: 1_000, duration: 1_000, nodes: [0], groups: [], cuts: [], lossPct: 0 }],
    })
    await expect(run).rejects.toThrow(/disk-full fault, which needs the tmpfs data disks of netns mode: netns mode not asked for/)
    expect(lines.some((l) => l.includes('faults scheduled'))).toBe(false)
  })

  it('with a network fault is refused in loopback mode, where it would do nothing', async () => {
    const run = runChaos({
      nodes: 3,
      durationS: 5,
      seed: 1,
      netns: false,
      log: () => undefined,
      schedule: [{ index: 0, kind: 'one-way-cut', at: 1_000, duration: 1_000, nodes: [0], groups: [], cuts: ['0>1'], lossPct: 0 }],
    })
    await expect(run).rejects.toThrow(/one-way-cut fault, which needs netns mode: netns mode not asked for/)
  })
})
