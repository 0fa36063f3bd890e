import { unresolvedConflicts } from '../../crdt/index.ts'
import type { EntityMeta } from './entity-meta.ts'
import type { WorkingEntity } from './jobs.ts'
import type { ConflictView, EntityView } from './types.ts'

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
