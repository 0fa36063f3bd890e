import { counterOf, type ChangeRecord, type VersionVector } from '../../crdt/index.ts'

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
   * Every held change, in an order likely to be causal: by origin wall-clock time, then per
   * origin by seq. The store applies what it can and defers the rest, so the order is only a
   * matter of how many passes it takes, never of correctness.
   */
  ordered(): ChangeRecord[] {
    return [...this.#byDot.values()].sort((a, b) => a.time - b.time || (a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : a.seq - b.seq))
  }
}
