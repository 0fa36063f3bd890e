/**
 * The decisions of the apply rules, as pure functions of plain values (no document, no storage):
 * what becomes of a remote change or a snapshot, whether a local job is refused, and the entity
 * meta after a change. apply-rules.ts carries them out on a group's documents.
 */
import {
  advanceFieldHeads,
  advanceHeads,
  classifyRemoteChange,
  classifySnapshot,
  compare,
  counterOf,
  dominates,
  emptyVector,
  isDeletedByHeads,
  merge,
  ValidationError,
  withCounter,
  type ChangeRecord,
  type EntitySnapshot,
  type JsonRecord,
  type JsonValue,
  type VersionVector,
} from '../../crdt/index.ts'
import { EntityNotFoundError, UnresolvedConflictError } from '../errors.ts'
import type { EntityMeta } from './entity-meta.ts'
import { entityMetaKey } from './keys.ts'
import { isWellFormedUpdate } from './jobs.ts'
import type { ConflictPolicy, LocalOp, NamespaceMode } from './types.ts'
import { conflictViews } from './views.ts'

/**
 * What becomes of a remote change: `invalid` (not a Yjs update), `duplicate` (already here),
 * `deferred` (a predecessor is missing), `record` (kept in the log of a push-only namespace, never
 * applied), `stale` (made on a superseded incarnation or a purged tombstone: its dot is recorded,
 * nothing applied; docs/tombstone-gc.md), `apply`, or `reset` (applied to a new incarnation).
 */
export type RemoteVerdict = 'invalid' | 'duplicate' | 'deferred' | 'record' | 'stale' | 'apply' | 'reset'

/** What a remote change is judged against: the group's node vector and the entity as it is now. */
export interface RemoteChangeContext {
  readonly nodeVv: VersionVector
  readonly meta: EntityMeta | undefined
  /** The purge horizon of the change's namespace. */
  readonly horizon: VersionVector | undefined
  readonly mode: NamespaceMode
}

export function remoteVerdict(change: ChangeRecord, at: RemoteChangeContext): RemoteVerdict {
  const have = counterOf(at.nodeVv, change.origin)
  if (!isWellFormedUpdate(change.update)) return 'invalid'
  if (change.seq <= have) return 'duplicate'
  if (change.seq !== have + 1 || !dominates(at.nodeVv, change.context)) return 'deferred'
  if (at.mode === 'push-only') return 'record'
  return classifyRemoteChange(at.meta, change, at.horizon)
}

/** The meta of an entity a stale change reached: its vector takes the change's dot, at a new feed position. */
export function staleChangeMeta(meta: EntityMeta, change: ChangeRecord, feedSeq: number): EntityMeta {
  return { ...meta, vv: withCounter(meta.vv, change.origin, change.seq), feedSeq }
}

/**
 * What becomes of another replica's snapshot of an entity: `skip` (a push-only namespace),
 * `invalid` (not a Yjs update), `keep` (the local incarnation supersedes it: only its vector is
 * taken), `replace` (it supersedes the local one) or `merge`.
 */
export type SnapshotVerdict = 'skip' | 'invalid' | 'keep' | 'replace' | 'merge'

export function snapshotVerdict(snap: EntitySnapshot, meta: EntityMeta | undefined, mode: NamespaceMode): SnapshotVerdict {
  if (mode === 'push-only') return 'skip'
  if (!isWellFormedUpdate(snap.state)) return 'invalid'
  return classifySnapshot(meta, snap)
}

/** The vector a kept entity takes from a snapshot; undefined when the snapshot adds nothing. */
export function keptSnapshotVv(meta: EntityMeta, snap: EntitySnapshot): VersionVector | undefined {
  const vv = merge(meta.vv, snap.vv)
  return compare(vv, meta.vv) === 'equal' ? undefined : vv
}

/** The meta of an entity whose snapshot was merged (or took its place). */
export function mergedSnapshotMeta(
  before: EntityMeta | undefined,
  snap: EntitySnapshot,
  merged: Pick<EntityMeta, 'vv' | 'heads' | 'deleted' | 'incarnation'>,
  after: Pick<EntityMeta, 'fieldHeads' | 'feedSeq' | 'value' | 'texts'>,
): EntityMeta {
  return {
    vv: merged.vv,
    heads: merged.heads,
    fieldHeads: after.fieldHeads,
    deleted: merged.deleted,
    updatedAt: Math.max(before?.updatedAt ?? 0, snap.updatedAt),
    feedSeq: after.feedSeq,
    value: after.value,
    texts: after.texts,
    ...(merged.deleted && { deletedAt: Math.max(before?.deleted === true ? (before.deletedAt ?? 0) : 0, snap.updatedAt) }),
    ...((snap.incarnation ?? before?.incarnation) && { incarnation: snap.incarnation ?? before?.incarnation }),
  }
}

/** True when a tombstone's grace period has passed: writes to it start a new incarnation. */
export function isFrozen(meta: EntityMeta, now: number, graceMs: number): boolean {
  return meta.deleted && now >= (meta.deletedAt ?? meta.updatedAt) + graceMs
}

/** The meta of an entity at the start of a new incarnation: its vector stays, the rest starts over. */
export function newIncarnationMeta(meta: EntityMeta): EntityMeta {
  const { deletedAt: _deletedAt, ...rest } = meta
  return { ...rest, heads: [], fieldHeads: {}, deleted: false, value: {}, texts: [] }
}

/** What a change's meta needs of the entity's document. */
export interface ChangeEffect {
  /** A written field's value before the change (null: absent). */
  readonly before: (field: string) => JsonValue | null
  /** A written field's value as the change wrote it (null: removed). */
  readonly written: (field: string) => JsonValue | null
  /** The record after the change. */
  readonly value: JsonRecord
  /** The text roots after the change. */
  readonly texts: readonly string[]
}

/** The entity's meta after a change (its feed position is the caller's to set). */
export function advancedMeta(meta: EntityMeta | undefined, change: ChangeRecord, effect: ChangeEffect): EntityMeta {
  const fieldHeads = advanceFieldHeads(meta?.fieldHeads ?? {}, change, effect.before, effect.written)
  const heads = advanceHeads(meta?.heads ?? [], {
    origin: change.origin,
    seq: change.seq,
    op: change.op,
    context: change.context,
    fields: change.fields,
  })
  const deleted = isDeletedByHeads(heads)
  const incarnation = change.fresh === true ? { origin: change.origin, seq: change.seq } : meta?.incarnation
  // The latest delete time while deleted (the same on every node whatever the arrival order).
  const deletedAt = deleted ? Math.max(meta?.deleted === true ? (meta.deletedAt ?? 0) : 0, change.op === 'delete' ? change.time : 0) : undefined
  return {
    // A fresh change names the history it superseded in its context: a node that purged that
    // history (or never had it) takes it from there, so the vector is the same everywhere.
    vv: withCounter(change.fresh === true ? merge(meta?.vv ?? emptyVector(), change.context) : (meta?.vv ?? emptyVector()), change.origin, change.seq),
    heads,
    fieldHeads,
    deleted,
    updatedAt: Math.max(meta?.updatedAt ?? 0, change.time),
    feedSeq: meta?.feedSeq ?? 0,
    value: effect.value,
    texts: effect.texts,
    ...(deletedAt !== undefined && { deletedAt }),
    ...(incarnation && { incarnation }),
  }
}

/** What validating a local job reads of an entity. */
export interface LocalEntity {
  readonly meta: EntityMeta | undefined
  /** The length of one of its texts as committed. */
  textLength(name: string): number
}

/** What validating a local job reads of the store. */
export interface LocalRules {
  readonly policyOf: (ns: string) => ConflictPolicy
  readonly isFrozen: (meta: EntityMeta) => boolean
}

/**
 * Dry run of a local job on existence and text lengths only: throws the job's first refusal
 * before any document is edited.
 */
export function validateLocalOps(ops: readonly LocalOp[], entityOf: (key: string) => LocalEntity, rules: LocalRules): void {
  const sim = new Map<string, { live: boolean; fresh: boolean; texts: Map<string, number> }>()
  for (const op of ops) {
    const key = entityMetaKey(op.ns, op.id)
    const entity = entityOf(key)
    let state = sim.get(key) ?? { live: entity.meta !== undefined && !entity.meta.deleted, fresh: false, texts: new Map() }
    if (op.op === 'yjs' && !isWellFormedUpdate(op.update)) throw new ValidationError('INVALID_UPDATE', 'not a Yjs update')
    if (op.op === 'yjs' && !state.live && entity.meta !== undefined && rules.isFrozen(entity.meta)) {
      // A Yjs client's update builds on the old document, which GC may purge anywhere now.
      throw new ValidationError('ENTITY_DELETED', `entity ${op.ns}/${op.id} was deleted; write it with PUT to create it again`)
    }
    if (op.op === 'resolve') {
      if (!state.live) throw new EntityNotFoundError(op.ns, op.id)
      sim.set(key, state)
      continue
    }
    if (entity.meta !== undefined && !state.fresh && rules.policyOf(op.ns) === 'strict' && conflictViews(entity.meta).length > 0) {
      throw new UnresolvedConflictError(op.ns, op.id)
    }
    if (op.op === 'delete') {
      if (!state.live) throw new EntityNotFoundError(op.ns, op.id)
      state = { live: false, fresh: true, texts: new Map() }
    } else {
      // A write to a missing or deleted entity starts from nothing.
      if (!state.live) state = { live: true, fresh: true, texts: new Map() }
      if (op.op === 'text') {
        let length = state.texts.get(op.name) ?? (state.fresh ? 0 : entity.textLength(op.name))
        for (const [pos, del, ins] of op.splices) {
          if (!Number.isSafeInteger(pos) || !Number.isSafeInteger(del) || pos < 0 || del < 0 || pos + del > length) {
            throw new ValidationError('TEXT_RANGE', `splice [${pos}, ${del}] is outside the text (length ${length})`)
          }
          length += ins.length - del
        }
        state.texts.set(op.name, length)
      }
    }
    sim.set(key, state)
  }
}
