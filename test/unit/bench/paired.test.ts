import { describe, expect, it } from 'vitest'
import { pairedPasses } from '../../../scripts/bench/paired.ts'

describe('pairedPasses', () => {
  it('runs the baseline first on even runs and the measured side first on odd ones, and returns each result on its side', async () => {
    for (const [run, first] of [
      [0, 'base'],
      [1, 'ours'],
      [2, 'base'],
      [7, 'ours'],
    ] as const) {
      const order: string[] = []
      const { o, b } = await pairedPasses(
        run,
        async () => (order.push('ours'), `o${run}`),
        async () => (order.push('base'), `b${run}`),
      )
      expect(order).toEqual(first === 'base' ? ['base', 'ours'] : ['ours', 'base'])
      expect([o, b]).toEqual([`o${run}`, `b${run}`])
    }
  })
})
