/**
 * The apply rules: how a group's jobs (local writes, remote changes, snapshot merges) change the
 * entities loaded for the group and the group's node state, in memory. The committer writes the
 * result in one batch (entity-store.ts).
 */
import type { Logger } from 'pino'
import type * as Y from 'yjs'
import {
  applyEntityUpdate,
  compare,
  mergeEntityMeta,
  mergeFieldHeads,
  DATA_ROOT,
  clearEntity,
  counterOf,
  createEntityDoc,
  decodeFreshRecord,
  emptyVector,
  encodeChange,
  freshRecordEdit,
  hasPendingUpdates,
  merge,
  patchRecord,
  readRecord,
  readText,
  applyClientUpdate,
  replaceRecord,
  resolveRecord,
  spliceText,
  textNames,
  writtenFieldValues,
  withCounter,
  type ChangeRecord,
  type EntityEdit,
  type EntitySnapshot,
  type JsonRecord,
  type JsonValue,
  type VersionVector,
} from '../../crdt/index.ts'
import {
  advancedMeta,
  isFrozen,
  keptSnapshotVv,
  mergedSnapshotMeta,
  newIncarnationMeta,
  remoteVerdict,
  snapshotVerdict,
  staleChangeMeta,
  validateLocalOps,
} from './apply-decisions.ts'
import type { EntityMeta } from './entity-meta.ts'
import { entityMetaKey } from './keys.ts'
import { own } from './meta-records.ts'
import type { Lru } from './lru.ts'
import { mergeEdits, RefusedBeforeEdit, type GroupState, type Job, type JobResult, type WorkingEntity } from './jobs.ts'
import type { ConflictPolicy, EntityView, GcStats, LocalOp, NamespaceMode, RemoteApplyResult, SnapshotApplyResult } from './types.ts'
import { toView } from './views.ts'

/** What the apply rules read of the store while they apply a group. */
export interface ApplyContext {
  readonly nodeId: string
  /** The Yjs clientID this process edits with. */
  readonly clientId: number
  readonly now: () => number
  /** The grace period of tombstones. */
  readonly graceMs: number
  readonly modeOf: (ns: string) => NamespaceMode
  readonly policyOf: (ns: string) => ConflictPolicy
  /** Per namespace, the purge horizon. */
  readonly horizon: Readonly<Record<string, VersionVector>>
  /** The cache of entity documents (a new incarnation's document goes in). */
  readonly docs: Lru<string, Y.Doc>
  readonly gcStats: GcStats
  readonly log: Logger
}

export function applyJob(ctx: ApplyContext, job: Job, g: GroupState): JobResult {
  switch (job.kind) {
    case 'local':
      return { views: processLocal(ctx, job.ops, g) }
    case 'remote':
      return { views: [], remote: processRemote(ctx, job.changes, g) }
    case 'snapshot':
      return { views: [], snapshot: processSnapshot(ctx, job.entities, g) }
    case 'snapshot-end':
      g.nodeVv = merge(g.nodeVv, job.vv)
      g.logFloor = merge(g.logFloor, job.vv)
      g.touched = true
      return { views: [] }
    case 'wipe':
    case 'purge':
    case 'index':
      throw new Error('a wipe, purge or index job runs alone')
  }
}

function processLocal(ctx: ApplyContext, ops: readonly LocalOp[], g: GroupState): EntityView[] {
  try {
    validateLocal(ctx, ops, g.working)
  } catch (error) {
    throw new RefusedBeforeEdit(error)
  }
  const views: EntityView[] = []
  for (const op of ops) {
    const entity = g.working.get(entityMetaKey(op.ns, op.id)) as WorkingEntity
    const change = applyLocal(ctx, op, entity, g.nodeVv)
    if (change) {
      g.nodeVv = withCounter(g.nodeVv, ctx.nodeId, change.seq)
      g.committed.push({ change, bytes: encodeChange(change), feedSeq: ++g.feedSeq, remote: false, applied: true })
      entity.meta = { ...(entity.meta as EntityMeta), feedSeq: g.feedSeq }
    }
    views.push(toView(entity))
  }
  return views
}

function processRemote(ctx: ApplyContext, changes: readonly ChangeRecord[], g: GroupState): RemoteApplyResult {
  let applied = 0
  let duplicates = 0
  const deferred: ChangeRecord[] = []
  const invalid: ChangeRecord[] = []
  for (const change of changes) {
    const entity = g.working.get(entityMetaKey(change.ns, change.id)) as WorkingEntity
    const verdict = remoteVerdict(change, { nodeVv: g.nodeVv, meta: entity.meta, horizon: own(ctx.horizon, change.ns), mode: ctx.modeOf(change.ns) })
    if (verdict === 'invalid') {
      invalid.push(change)
      continue
    }
    if (verdict === 'duplicate') {
      duplicates++
      continue
    }
    if (verdict === 'deferred') {
      deferred.push(change)
      continue
    }
    g.nodeVv = withCounter(g.nodeVv, change.origin, change.seq)
    if (verdict === 'record') {
      // Kept in the log (so it is relayed) but never applied here.
      g.committed.push({ change, bytes: encodeChange(change), feedSeq: 0, remote: true, applied: false })
    } else if (verdict === 'stale') {
      // Made on a superseded incarnation or a purged tombstone: every node records its dot
      // and applies nothing of it (docs/tombstone-gc.md).
      ctx.gcStats.staleChanges++
      ctx.log.debug({ ns: change.ns, id: change.id, origin: change.origin, seq: change.seq }, 'stale change recorded, not applied')
      if (entity.meta) {
        // Its vector changed: a new feed position, so feed readers (backups) see it.
        entity.meta = staleChangeMeta(entity.meta, change, ++g.feedSeq)
        entity.changed = true
      }
      g.committed.push({ change, bytes: encodeChange(change), feedSeq: 0, remote: true, applied: false })
    } else {
      if (verdict === 'reset') startIncarnation(ctx, entity)
      applyRemoteChange(ctx, change, entity)
      g.committed.push({ change, bytes: encodeChange(change), feedSeq: ++g.feedSeq, remote: true, applied: true })
      entity.meta = { ...(entity.meta as EntityMeta), feedSeq: g.feedSeq }
    }
    applied++
  }
  return { applied, duplicates, deferred, invalid }
}

function processSnapshot(ctx: ApplyContext, entities: readonly EntitySnapshot[], g: GroupState): SnapshotApplyResult {
  let merged = 0
  let invalid = 0
  for (const snap of entities) {
    const entity = g.working.get(entityMetaKey(snap.ns, snap.id)) as WorkingEntity
    const verdict = snapshotVerdict(snap, entity.meta, ctx.modeOf(snap.ns))
    if (verdict === 'skip') continue
    if (verdict === 'invalid') {
      invalid++
      continue
    }
    if (verdict === 'keep') {
      // Its incarnation is superseded here: only its history (vector) is taken.
      const vv = keptSnapshotVv(entity.meta as EntityMeta, snap)
      if (vv === undefined) continue
      entity.meta = { ...(entity.meta as EntityMeta), vv, feedSeq: ++g.feedSeq }
      entity.changed = true
      g.touched = true
      merged++
      continue
    }
    if (verdict === 'replace') startIncarnation(ctx, entity)
    const before = entity.meta
    const meta = mergeEntityMeta(before, snap)
    if (before && compare(before.vv, meta.vv) === 'equal') continue // nothing new in it
    // Merged before the state is applied, so that local values are still this replica's.
    const data = entity.doc.getMap(DATA_ROOT)
    let incoming: JsonRecord | undefined
    const fieldHeads = mergeFieldHeads(
      { vv: before?.vv ?? emptyVector(), fieldHeads: before?.fieldHeads ?? {} },
      snap,
      (f) => (data.get(f) as JsonValue | undefined) ?? null,
      (f) => (incoming ??= readRecord(createEntityDoc(snap.state)))[f] ?? null,
    )
    applyEntityUpdate(entity.doc, snap.state)
    entity.replaced()
    entity.meta = mergedSnapshotMeta(before, snap, meta, { fieldHeads, feedSeq: ++g.feedSeq, value: readRecord(entity.doc), texts: textNames(entity.doc) })
    entity.changed = true
    g.touched = true
    merged++
  }
  return { merged, invalid }
}

function validateLocal(ctx: ApplyContext, ops: readonly LocalOp[], working: Map<string, WorkingEntity>): void {
  validateLocalOps(
    ops,
    (key) => {
      const entity = working.get(key) as WorkingEntity
      return { meta: entity.meta, textLength: (name) => readText(entity.doc, name).length }
    },
    { policyOf: ctx.policyOf, isFrozen: (meta) => isFrozen(meta, ctx.now(), ctx.graceMs) },
  )
}

function applyLocal(ctx: ApplyContext, op: LocalOp, entity: WorkingEntity, nodeVv: VersionVector): ChangeRecord | undefined {
  const meta = entity.meta
  const live = meta !== undefined && !meta.deleted
  let fresh = false
  let edit: EntityEdit
  let record: JsonRecord | undefined
  if (op.op === 'delete') {
    edit = { update: null, fields: [], texts: [] }
  } else if (op.op === 'resolve') {
    // Always a change, even when it keeps every winner: it is what sees all the siblings.
    edit = resolveRecord(entity.doc, op.value)
  } else if (op.op === 'yjs') {
    edit = applyClientUpdate(entity.doc, op.update)
    if (edit.update === null) return undefined
  } else if ((op.op === 'put' || op.op === 'patch') && entity.isNew) {
    // The commonest write, an insert: encoded without building a document (same bytes).
    const created = freshRecordEdit(ctx.clientId, op.value, op.op)
    entity.setState(created.state)
    edit = created.edit
    record = created.value
  } else {
    // Past its grace period a tombstone may be purged anywhere: the write starts a new
    // incarnation on an empty document, which depends on nothing of the old one.
    fresh = meta?.deleted === true && isFrozen(meta, ctx.now(), ctx.graceMs)
    if (fresh) startIncarnation(ctx, entity)
    const cleared = live || fresh ? undefined : clearEntity(entity.doc)
    const main =
      op.op === 'put'
        ? replaceRecord(entity.doc, op.value)
        : op.op === 'patch'
          ? patchRecord(entity.doc, op.value)
          : spliceText(entity.doc, op.name, op.splices)
    edit = cleared ? mergeEdits(cleared, main) : main
    // An unchanged live entity needs no change; a write to a missing or deleted one always
    // makes one (it (re)creates the entity, even when the record is empty).
    if (edit.update === null && live) return undefined
  }
  if (record === undefined) entity.applied(edit.update)
  const seq = counterOf(nodeVv, ctx.nodeId) + 1
  const change: ChangeRecord = {
    origin: ctx.nodeId,
    seq,
    ns: op.ns,
    id: op.id,
    op: op.op === 'delete' ? 'delete' : 'upsert',
    context: meta?.vv ?? emptyVector(),
    fields: edit.fields,
    texts: edit.texts,
    update: edit.update ?? new Uint8Array(0),
    time: ctx.now(),
    ...(fresh && { fresh: true as const }),
  }
  advanceMeta(entity, change, undefined, record)
  return change
}

/**
 * Replaces the entity's document by an empty one for a change that starts a new incarnation;
 * the causal history (vector) stays, heads and field heads start over with that change.
 */
function startIncarnation(ctx: ApplyContext, entity: WorkingEntity): void {
  entity.doc = createEntityDoc(undefined, ctx.clientId)
  ctx.docs.set(entityMetaKey(entity.ns, entity.id), entity.doc)
  ctx.gcStats.incarnations++
  if (entity.meta) entity.meta = newIncarnationMeta(entity.meta)
}

function applyRemoteChange(ctx: ApplyContext, change: ChangeRecord, entity: WorkingEntity): void {
  if (entity.isNew && change.texts.length === 0) {
    // A new entity's first write, as another node's fast path made it: the update is the
    // whole state and the record is read off it, with no Y.Doc (decodeFreshRecord).
    const created = decodeFreshRecord(change.update)
    if (created !== undefined) {
      entity.setState(change.update)
      advanceMeta(entity, change, undefined, created.value)
      return
    }
  }
  // The fields' values before this change: a concurrent write that stays a head keeps its value.
  const data = entity.doc.getMap(DATA_ROOT)
  const before: Record<string, JsonValue | null> = {}
  for (const f of change.fields) before[f] = (data.get(f) as JsonValue | undefined) ?? null
  applyEntityUpdate(entity.doc, change.update)
  entity.applied(change.update)
  if (hasPendingUpdates(entity.doc)) {
    // Causal delivery makes this impossible; if it happens anyway, say so loudly.
    ctx.log.error({ ns: change.ns, id: change.id, origin: change.origin, seq: change.seq }, 'Yjs update left pending')
  }
  advanceMeta(entity, change, (f) => before[f] ?? null)
}

/** `record`: the entity's record after the change, when it has no document (a fresh write). */
function advanceMeta(entity: WorkingEntity, change: ChangeRecord, before: (field: string) => JsonValue | null = () => null, record?: JsonRecord): void {
  let written: Record<string, JsonValue | null> | undefined
  entity.meta = advancedMeta(entity.meta, change, {
    before,
    written: (f) => {
      written ??= writtenFieldValues(entity.doc, change.update, change.fields)
      return written[f] ?? null
    },
    value: record ?? readRecord(entity.doc),
    texts: record ? [] : textNames(entity.doc),
  })
  entity.changed = true
}
