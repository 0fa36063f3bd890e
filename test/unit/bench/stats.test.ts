import { describe, expect, it } from 'vitest'
import { p50p99, percentile } from '../../../scripts/bench/stats.ts'

describe('p50p99', () => {
  it('sorts numerically (not as strings) and takes nearest ranks, from an array or a Float64Array', () => {
    const values = Array.from({ length: 200 }, (_, i) => ((i * 37) % 200) + 1) // 1..200, shuffled
    expect(p50p99(values)).toEqual({ p50: 100, p99: 198 })
    expect(p50p99(Float64Array.from([10, 9, 100, 2]))).toEqual({ p50: 9, p99: 100 })
    expect(p50p99([7])).toEqual({ p50: 7, p99: 7 })
    expect(percentile([1, 2, 3, 4], 50)).toBe(2)
  })
})
