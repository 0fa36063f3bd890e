import { counterOf, type ChangeRecord, type VersionVector } from '../../crdt/index.ts'

/** True when `have` includes every dot of `context`. */
function covers(have: Readonly<Record<string, number>>, context: VersionVector): boolean {
  for (const [origin, seq] of Object.entries(context)) if (counterOf(have, origin) < seq) return false
  return true
}

/**
 * Remote changes that arrived before their causal predecessors, held until those arrive (or the
 * bound is hit: then the newest are dropped, and anti-entropy brings them again).
 */
export class PendingChanges {
  readonly #max: number
  readonly #byDot = new Map<string, ChangeRecord>()

  constructor(max: number) {
    this.#max = max
  }

  get size(): number {
    return this.#byDot.size
  }

  /** Adds changes not yet covered by `vv`; returns how many were dropped for lack of room. */
  add(changes: readonly ChangeRecord[], vv: VersionVector): number {
    let dropped = 0
    for (const change of changes) {
      if (change.seq <= counterOf(vv, change.origin)) continue
      const key = `${change.origin}:${change.seq}`
      if (this.#byDot.has(key)) continue
      if (this.#byDot.size >= this.#max) {
        dropped++
        continue
      }
      this.#byDot.set(key, change)
    }
    return dropped
  }

  /** Forgets these held changes (refused as malformed: an honest copy of the dot may come later). */
  remove(changes: readonly ChangeRecord[]): void {
    for (const change of changes) {
      const key = `${change.origin}:${change.seq}`
      if (this.#byDot.get(key) === change) this.#byDot.delete(key)
    }
  }

  /** Forgets everything `vv` covers (applied meanwhile). */
  prune(vv: VersionVector): void {
    for (const [key, change] of this.#byDot) if (change.seq <= counterOf(vv, change.origin)) this.#byDot.delete(key)
  }

  /**
   * Held changes that can apply on top of `vv` now, in a causal order: each is its origin's next
   * seq and its context is covered by `vv` plus the changes before it in the list. At most
   * `limit`. Changes still waiting for predecessors are left out, so a pass costs only what it
   * delivers, however many changes wait.
   */
  deliverable(vv: VersionVector, limit = Number.POSITIVE_INFINITY): ChangeRecord[] {
    const have: Record<string, number> = { ...vv }
    const origins = new Set<string>()
    for (const change of this.#byDot.values()) origins.add(change.origin)
    const out: ChangeRecord[] = []
    let progress = true
    while (progress && out.length < limit) {
      progress = false
      for (const origin of origins) {
        for (;;) {
          if (out.length >= limit) break
          const next = this.#byDot.get(`${origin}:${counterOf(have, origin) + 1}`)
          if (!next || !covers(have, next.context)) break
          out.push(next)
          have[origin] = next.seq
          progress = true
        }
      }
    }
    return out
  }
}
