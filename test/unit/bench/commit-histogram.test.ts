import { describe, expect, it } from 'vitest'
import { commitBuckets, slowCommitsPct } from '../../../scripts/bench/commit-histogram.ts'

function metrics(counts: Record<string, number>): string {
  return [
    '# HELP meshsync_commit_duration_seconds Time to write and fsync one group commit.',
    '# TYPE meshsync_commit_duration_seconds histogram',
    ...Object.entries(counts).map(([le, n]) => `meshsync_commit_duration_seconds_bucket{le="${le}"} ${n}`),
    'meshsync_commit_duration_seconds_sum 0.5',
    `meshsync_commit_duration_seconds_count ${counts['+Inf']}`,
    'meshsync_commits_total 7',
  ].join('\n')
}

describe('commit histogram', () => {
  it('reads the cumulative buckets, +Inf as Infinity', () => {
    const b = commitBuckets(metrics({ '0.001': 3, '0.005': 8, '0.01': 9, '+Inf': 10 }))
    expect([...b]).toEqual([
      [0.001, 3],
      [0.005, 8],
      [0.01, 9],
      [Infinity, 10],
    ])
    expect(() => commitBuckets('meshsync_commits_total 7')).toThrow(/no meshsync_commit_duration_seconds/)
  })

  it('gives the share of the commits between two scrapes slower than a bound, over every node given', () => {
    const node = (before: Record<string, number>, after: Record<string, number>) => ({ before: commitBuckets(metrics(before)), after: commitBuckets(metrics(after)) })
    // Node A: 10 new commits, 2 over 5 ms; node B: 30 new, 1 over 5 ms (and older slow ones before).
    const a = node({ '0.005': 5, '+Inf': 5 }, { '0.005': 13, '+Inf': 15 })
    const b = node({ '0.005': 40, '+Inf': 50 }, { '0.005': 69, '+Inf': 80 })
    expect(slowCommitsPct([a], 0.005)).toBeCloseTo(20)
    expect(slowCommitsPct([a, b], 0.005)).toBeCloseTo(7.5)
    expect(slowCommitsPct([node({ '0.005': 5, '+Inf': 5 }, { '0.005': 5, '+Inf': 5 })], 0.005)).toBeNull()
    expect(() => slowCommitsPct([a], 0.004)).toThrow(/not a bound/)
  })
})
