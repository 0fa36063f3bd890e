/**
 * Reading the daemon's `meshsync_commit_duration_seconds` histogram from its /metrics text, to say
 * how many group commits (write + fsync of a batch) were slow between two scrapes.
 */

const BUCKET = /^meshsync_commit_duration_seconds_bucket\{le="([^"]+)"\} (\d+)$/

/** Cumulative bucket counts: upper bound in seconds (Infinity for +Inf) -> commits at or under it. */
export type CommitBuckets = ReadonlyMap<number, number>

export function commitBuckets(metricsText: string): CommitBuckets {
  const buckets = new Map<number, number>()
  for (const line of metricsText.split('\n')) {
    const m = BUCKET.exec(line)
    if (m) buckets.set(m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2]))
  }
  if (!buckets.has(Infinity)) throw new Error('no meshsync_commit_duration_seconds histogram in the metrics')
  return buckets
}

/**
 * Of the commits made between `before` and `after` on every node given, the share (%) that took
 * longer than `seconds`, which must be one of the histogram's bounds; null when none was made.
 */
export function slowCommitsPct(nodes: readonly { readonly before: CommitBuckets; readonly after: CommitBuckets }[], seconds: number): number | null {
  let total = 0
  let slow = 0
  for (const { before, after } of nodes) {
    const under = (b: CommitBuckets): number => {
      const count = b.get(seconds)
      if (count === undefined) throw new Error(`${seconds} s is not a bound of the commit histogram`)
      return count
    }
    const made = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0)
    total += made
    slow += made - (under(after) - under(before))
  }
  return total === 0 ? null : (100 * slow) / total
}
