import type { ChangeOp, Dot } from './change-record.ts'
import { counterOf, type VersionVector } from './version-vector.ts'

/**
 * A causally-maximal change of an entity: no other known change of the entity was made on a
 * version that includes it. An entity has one head after sequential writes and several after
 * concurrent ones; it is deleted exactly when every head is a delete.
 */
export interface Head extends Dot {
  readonly op: ChangeOp
  readonly context: VersionVector
  readonly fields: readonly string[]
}

/** True when `a` happened before `b`: `b` was made on a version that includes `a`'s dot. */
export function happenedBefore(a: Dot, b: { readonly context: VersionVector }): boolean {
  return counterOf(b.context, a.origin) >= a.seq
}

/** True when neither change was made on a version including the other. Same dot: false. */
export function isConcurrent(a: Dot & { readonly context: VersionVector }, b: Dot & { readonly context: VersionVector }): boolean {
  if (a.origin === b.origin && a.seq === b.seq) return false
  return !happenedBefore(a, b) && !happenedBefore(b, a)
}

/**
 * The heads after `change` is known: heads the change saw are dropped, and the change joins
 * unless a head already saw it (a late duplicate or an out-of-order arrival). The result does not
 * depend on the order changes arrive in, and is sorted by dot.
 */
export function advanceHeads(heads: readonly Head[], change: Head): Head[] {
  if (heads.some((h) => (h.origin === change.origin && h.seq === change.seq) || happenedBefore(change, h))) {
    return [...heads]
  }
  const kept = heads.filter((h) => !happenedBefore(h, change))
  kept.push(change)
  return kept.sort(compareDots)
}

/** An entity is deleted when it has heads and every one of them is a delete. */
export function isDeletedByHeads(heads: readonly Head[]): boolean {
  return heads.length > 0 && heads.every((h) => h.op === 'delete')
}

/** Total order on dots (origin, then seq), used to keep lists canonical. */
export function compareDots(a: Dot, b: Dot): number {
  if (a.origin !== b.origin) return a.origin < b.origin ? -1 : 1
  return a.seq - b.seq
}
