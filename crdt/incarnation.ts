import { compareDots } from './causality.ts'
import type { ChangeRecord, Dot } from './change-record.ts'
import { counterOf, dominates, type VersionVector } from './version-vector.ts'

/**
 * Incarnations of an entity (docs/tombstone-gc.md). A write to a tombstone whose grace period
 * has passed starts a new incarnation: a `fresh` change made on an empty Yjs document, which
 * therefore depends on nothing tombstone GC may purge. Every node holding the older incarnation
 * replaces it; changes made on an older incarnation are stale from then on. All decisions below
 * depend only on causal metadata, so every node decides the same.
 */

/** True when `vv` includes the change `dot`. */
export function knowsDot(vv: VersionVector, dot: Dot): boolean {
  return counterOf(vv, dot.origin) >= dot.seq
}

/** What an entity holds that the rules look at. */
export interface IncarnationState {
  readonly vv: VersionVector
  readonly incarnation?: Dot | undefined
}

/**
 * What to do with a remote change:
 * - `apply`: apply its update to the entity's document, as always;
 * - `reset`: it starts an incarnation that supersedes the entity's: replace the document by it;
 * - `stale`: it was made on an incarnation (or a purged tombstone) that is superseded: its update
 *   is not applied anywhere; only its dot is recorded.
 *
 * `entity` is undefined when the node holds nothing for the entity; `purgedHorizon` covers every
 * tombstone of the namespace purged here (or adopted with a reload from a peer that purged them).
 * For an entity that is not here, a change the horizon covers is purged history, and a non-fresh
 * change made on a version the horizon covers was made on a purged tombstone: both are stale.
 */
export function classifyRemoteChange(
  entity: IncarnationState | undefined,
  change: Pick<ChangeRecord, 'origin' | 'seq' | 'context' | 'fresh'>,
  purgedHorizon: VersionVector | undefined,
): 'apply' | 'reset' | 'stale' {
  if (entity === undefined && purgedHorizon !== undefined) {
    // The change itself is part of purged history (this node held everything up to the horizon,
    // so an entity missing here with a change below it was purged), or it was made on it.
    if (knowsDot(purgedHorizon, change)) return 'stale'
    const emptyContext = Object.keys(change.context).length === 0
    if (change.fresh !== true && !emptyContext && dominates(purgedHorizon, change.context)) return 'stale'
  }
  const current = entity?.incarnation
  if (change.fresh === true) {
    if (current === undefined || knowsDot(change.context, current)) return 'reset'
    // Two fresh incarnations made concurrently: the greater dot wins, everywhere.
    return compareDots(change, current) > 0 ? 'reset' : 'stale'
  }
  if (entity === undefined) return 'apply'
  if (current !== undefined && !knowsDot(change.context, current)) return 'stale'
  return 'apply'
}

/**
 * What to do with another replica's snapshot of an entity: `merge` it (same incarnation),
 * `replace` the local entity by it (its incarnation supersedes), or `keep` the local one and
 * take only its vector (the local incarnation supersedes).
 */
export function classifySnapshot(local: IncarnationState | undefined, incoming: IncarnationState): 'merge' | 'replace' | 'keep' {
  if (local === undefined) return 'merge'
  const mine = local.incarnation
  const theirs = incoming.incarnation
  if (mine === undefined && theirs === undefined) return 'merge'
  if (mine !== undefined && theirs !== undefined && compareDots(mine, theirs) === 0) return 'merge'
  if (mine === undefined) return 'replace'
  if (theirs === undefined) return 'keep'
  const theyKnowMine = knowsDot(incoming.vv, mine)
  const iKnowTheirs = knowsDot(local.vv, theirs)
  if (theyKnowMine && !iKnowTheirs) return 'replace'
  if (iKnowTheirs && !theyKnowMine) return 'keep'
  return compareDots(theirs, mine) > 0 ? 'replace' : 'keep'
}
