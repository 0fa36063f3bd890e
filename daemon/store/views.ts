import { unresolvedConflicts } from '../../crdt/index.ts'
import type { EntityMeta } from './entity-meta.ts'
import type { GroupState, WorkingEntity } from './jobs.ts'
import type { ConflictView, EntityView, FeedBatch, FeedEntry } from './types.ts'

export function toView(entity: WorkingEntity): EntityView {
  // An op that changed nothing on an entity that does not exist (a Yjs client's empty update).
  if (!entity.meta) return { ns: entity.ns, id: entity.id, value: {}, version: {}, updatedAt: new Date(0).toISOString(), deleted: true }
  return viewOf(entity.ns, entity.id, entity.meta)
}

export function viewOf(ns: string, id: string, meta: EntityMeta): EntityView {
  const view: EntityView = { ns, id, value: meta.value, version: meta.vv, updatedAt: new Date(meta.updatedAt).toISOString() }
  const conflicts = conflictViews(meta)
  return { ...view, ...(meta.deleted && { deleted: true as const }), ...(conflicts.length > 0 && { conflicts }) }
}

/** The entity's unresolved conflicts, in API form. */
export function conflictViews(meta: EntityMeta): ConflictView[] {
  return unresolvedConflicts(meta.fieldHeads ?? {}, meta.heads).map((c) => ({
    field: c.field,
    values: c.writes.map((w) => ({ value: w.value, origin: w.origin, version: { [w.origin]: w.seq }, ...(w.deleted && { deleted: true as const }) })),
  }))
}

/** A change-feed entry as `changes()` reads it back: value and conflicts for an upsert only. */
export function feedEntryOf(ns: string, id: string, meta: EntityMeta): FeedEntry & { ns: string } {
  if (meta.deleted) return { ns, cursor: meta.feedSeq, id, op: 'delete', version: meta.vv }
  const conflicts = conflictViews(meta)
  return { ns, cursor: meta.feedSeq, id, op: 'upsert', version: meta.vv, value: meta.value, ...(conflicts.length > 0 && { conflicts }) }
}

/** The feed entries a prepared group writes (positions after `from`), in feed order. */
export function feedBatchOf(g: GroupState, from: number): FeedBatch {
  const entries: (FeedEntry & { ns: string; updatedAt: number })[] = []
  for (const entity of g.working.values()) {
    // An entity rewritten without a new position keeps an entry readers have already had.
    if (!entity.changed || !entity.meta || entity.meta.feedSeq <= from) continue
    entries.push({ ...feedEntryOf(entity.ns, entity.id, entity.meta), updatedAt: entity.meta.updatedAt })
  }
  entries.sort((a, b) => a.cursor - b.cursor)
  return { from, to: g.feedSeq, entries }
}
