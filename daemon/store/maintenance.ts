/**
 * Maintenance batches that remove entities: wiping a namespace and purging tombstones
 * (docs/tombstone-gc.md). Each reads what it removes and returns one batch with the node state
 * after it; the committer writes it alone, between groups (entity-store.ts).
 */
import { dominates, emptyVector, merge, type VersionVector } from '../../crdt/index.ts'
import type { KvBatchOp, KvReader } from '../storage/kv-store.ts'
import { decodeMeta, type EntityMeta } from './entity-meta.ts'
import {
  conflictKey,
  conflictRange,
  entityDeltaRange,
  entityMetaKey,
  entityMetaRange,
  entityStateKey,
  entityStateRange,
  feedKey,
  feedRange,
  indexRange,
  parseEntityMetaKey,
  tombstoneKey,
  tombstoneRange,
} from './keys.ts'
import type { Job } from './jobs.ts'
import { historyPurgeOps } from './history-index.ts'
import { deltaKeysOf } from './state-parts.ts'
import type { EntityView, TombstoneInfo } from './types.ts'
import { viewOf } from './views.ts'
import { countsRecord, feedFloorRecord, feedSeqRecord, gcHorizonRecord, own, removedRecord } from './meta-records.ts'

/** A wipe's batch, the entities it removes (their meta keys too) and the node state after it. */
export interface WipePlan {
  readonly ops: KvBatchOp[]
  readonly removed: EntityView[]
  readonly removedKeys: string[]
  readonly counts: Record<string, number>
  readonly feedSeq: number
}

/** Every entity of `ns` (state, metadata, feed, conflict and index entries) removed in one batch; index definitions stay. */
export async function planWipe(kv: KvReader, ns: string, state: { readonly counts: Readonly<Record<string, number>>; readonly feedSeq: number }): Promise<WipePlan> {
  const ops: KvBatchOp[] = []
  const removed: EntityView[] = []
  const removedKeys: string[] = []
  for (const range of [entityMetaRange(ns), entityStateRange(ns), entityDeltaRange(ns), feedRange(ns, 0), conflictRange(ns), tombstoneRange(ns), indexRange(ns)]) {
    for await (const [key, value] of kv.iterate(range)) {
      ops.push({ type: 'del', key })
      if (key.startsWith('e')) {
        const { id } = parseEntityMetaKey(key)
        removed.push(viewOf(ns, id, decodeMeta(value)))
        removedKeys.push(key)
      }
    }
  }
  const counts = { ...state.counts }
  delete counts[ns]
  ops.push(countsRecord.put(counts))
  // The removal takes a feed position of its own (see META_REMOVED): backups notice it.
  const feedSeq = state.feedSeq + 1
  const marks = { ...removedRecord.decode(await kv.get(removedRecord.key)), [ns]: feedSeq }
  ops.push(removedRecord.put(marks), feedSeqRecord.put(feedSeq))
  return { ops, removed, removedKeys, counts, feedSeq }
}

/** The node state a purge reads and moves. */
export interface PurgeState {
  readonly horizon: Readonly<Record<string, VersionVector>>
  readonly feedFloor: Readonly<Record<string, number>>
  readonly feedSeq: number
}

/**
 * A purge's batch (undefined when it writes nothing), the tombstones it removes (their meta keys
 * too) and the node state after it.
 */
export interface PurgePlan extends PurgeState {
  readonly ops: KvBatchOp[] | undefined
  readonly purged: EntityView[]
  readonly purgedKeys: string[]
}

/** What a purge decides from the tombstones' metas as stored now. */
export interface PurgeDecision {
  /** The tombstones still as the GC found them, with their metas. */
  readonly purged: readonly { readonly ns: string; readonly id: string; readonly meta: EntityMeta }[]
  /** The deletes of every entry of theirs. */
  readonly ops: KvBatchOp[]
  readonly horizon: Record<string, VersionVector>
  readonly feedFloor: Record<string, number>
}

/**
 * Picks the tombstones still as the GC found them (`metas[i]` is the stored meta of
 * `tombstones[i]`), deletes their entries, and raises each namespace's purge horizon and feed
 * floor past them (and the horizon of `adopt.ns` to a peer's).
 */
export function decidePurge(
  tombstones: readonly TombstoneInfo[],
  metas: readonly (EntityMeta | undefined)[],
  state: Pick<PurgeState, 'horizon' | 'feedFloor'>,
  adopt?: { readonly ns: string; readonly horizon: VersionVector },
): PurgeDecision {
  const ops: KvBatchOp[] = []
  const purged: { ns: string; id: string; meta: EntityMeta }[] = []
  const horizon = { ...state.horizon }
  const feedFloor = { ...state.feedFloor }
  tombstones.forEach((t, i) => {
    const meta = metas[i]
    // Moved on since the GC looked (a late change, a new incarnation): not purged now.
    if (!meta || !meta.deleted || !dominates(t.vv, meta.vv)) return
    ops.push({ type: 'del', key: entityMetaKey(t.ns, t.id) }, { type: 'del', key: entityStateKey(t.ns, t.id) }, { type: 'del', key: tombstoneKey(t.ns, t.id) })
    for (const delta of deltaKeysOf(t.ns, t.id, meta.stateParts)) ops.push({ type: 'del', key: delta })
    ops.push({ type: 'del', key: conflictKey(t.ns, t.id) })
    if (meta.feedSeq > 0) ops.push({ type: 'del', key: feedKey(t.ns, meta.feedSeq) })
    horizon[t.ns] = merge(own(horizon, t.ns) ?? emptyVector(), meta.vv)
    feedFloor[t.ns] = Math.max(own(feedFloor, t.ns) ?? 0, meta.feedSeq)
    purged.push({ ns: t.ns, id: t.id, meta })
  })
  if (adopt) horizon[adopt.ns] = merge(own(horizon, adopt.ns) ?? emptyVector(), adopt.horizon)
  return { purged, ops, horizon, feedFloor }
}

/**
 * Removes the tombstones still as the GC found them, with their history entries, and raises the
 * purge horizon (by a peer's too, for `adopt`).
 */
export async function planPurge(kv: KvReader, job: Job & { kind: 'purge' }, state: PurgeState): Promise<PurgePlan> {
  const metas = await kv.getMany(job.tombstones.map((t) => entityMetaKey(t.ns, t.id)))
  const decision = decidePurge(
    job.tombstones,
    metas.map((bytes) => (bytes ? decodeMeta(bytes) : undefined)),
    state,
    job.adopt,
  )
  const { ops, horizon, feedFloor } = decision
  const purged = decision.purged.map(({ ns, id, meta }) => viewOf(ns, id, meta))
  const purgedKeys = decision.purged.map(({ ns, id }) => entityMetaKey(ns, id))
  // What is purged leaves the history too, and the entity's history says so (docs/history.md).
  for (const { ns, id, meta } of decision.purged) ops.push(...(await historyPurgeOps(kv, ns, id, meta.vv)))
  let feedSeq = state.feedSeq
  if (purged.length > 0) {
    // Entities were removed: like a wipe, the removal takes a feed position of its own in
    // each namespace it touched (META_REMOVED), so backups notice it.
    feedSeq++
    const marks = removedRecord.decode(await kv.get(removedRecord.key))
    for (const { ns } of purged) marks[ns] = feedSeq
    ops.push(removedRecord.put(marks), feedSeqRecord.put(feedSeq))
  }
  if (purged.length === 0 && !job.adopt) return { ops: undefined, purged, purgedKeys, horizon, feedFloor, feedSeq }
  ops.push(gcHorizonRecord.put(horizon), feedFloorRecord.put(feedFloor))
  return { ops, purged, purgedKeys, horizon, feedFloor, feedSeq }
}
