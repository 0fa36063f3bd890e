/**
 * The one batch a group commit writes: every entity the group changed (meta, state, feed,
 * conflict, tombstone and secondary index entries), its change records with their history
 * entries, and the node's records after it.
 */
import type { KvBatchOp } from '../storage/kv-store.ts'
import { encodeMeta, utf8, type EntityMeta } from './entity-meta.ts'
import { changeLogKey, conflictKey, entityMetaKey, feedKey, tombstoneKey } from './keys.ts'
import { clientIdsRecord, countsRecord, feedSeqRecord, logFloorRecord, nodeVvRecord } from './meta-records.ts'
import { historyEntryOp } from './history-index.ts'
import { indexEntryOps, type NamedIndex } from './indexes.ts'
import type { GroupState } from './jobs.ts'
import { stateWriteOps } from './state-parts.ts'
import type { DeltaLimits } from './types.ts'
import { conflictViews } from './views.ts'

const EMPTY = new Uint8Array(0)

/**
 * `clientIds`: every Yjs clientID of the node, when the record must be written again; `indexesOf`:
 * the indexes of a namespace (building ones too), whose entries move with each entity.
 */
export function groupBatchOps(
  g: GroupState,
  counts: Record<string, number>,
  deltaLimits: DeltaLimits,
  clientIds: number[] | undefined,
  indexesOf: (ns: string) => readonly NamedIndex[] = () => [],
): KvBatchOp[] {
  const ops: KvBatchOp[] = []
  for (const entity of g.working.values()) {
    if (!entity.changed || !entity.meta) continue
    const { ns, id, committed: before } = entity
    const stateParts = stateWriteOps(ns, id, before?.stateParts, before !== undefined, entity.meta.feedSeq, { updates: entity.updates, encodeWhole: () => entity.encodeState() }, ops, deltaLimits)
    const { stateParts: _stale, ...rest } = entity.meta
    const meta: EntityMeta = stateParts ? { ...rest, stateParts } : rest
    ops.push({ type: 'put', key: entityMetaKey(ns, id), value: encodeMeta(meta) })
    if (before && before.feedSeq > 0) ops.push({ type: 'del', key: feedKey(ns, before.feedSeq) })
    const conflicted = conflictViews(meta).length > 0
    if (conflicted !== (before !== undefined && conflictViews(before).length > 0)) {
      ops.push(conflicted ? { type: 'put', key: conflictKey(ns, id), value: EMPTY } : { type: 'del', key: conflictKey(ns, id) })
    }
    if (meta.deleted) {
      ops.push({ type: 'put', key: tombstoneKey(ns, id), value: utf8(JSON.stringify({ deletedAt: meta.deletedAt ?? meta.updatedAt, vv: meta.vv })) })
    } else if (before?.deleted === true) {
      ops.push({ type: 'del', key: tombstoneKey(ns, id) })
    }
    indexEntryOps(ns, id, before, meta, indexesOf(ns), ops)
    const entry = { id, op: meta.deleted ? 'delete' : 'upsert', version: meta.vv }
    ops.push({ type: 'put', key: feedKey(ns, meta.feedSeq), value: utf8(JSON.stringify(entry)) })
  }
  // Each change record with its history entry (docs/history.md), in the same batch.
  for (const { change, bytes } of g.committed) ops.push({ type: 'put', key: changeLogKey(change.origin, change.seq), value: bytes }, historyEntryOp(change))
  ops.push(logFloorRecord.put(g.logFloor), nodeVvRecord.put(g.nodeVv), feedSeqRecord.put(g.feedSeq), countsRecord.put(counts))
  if (clientIds !== undefined) ops.push(clientIdsRecord.put(clientIds))
  return ops
}
