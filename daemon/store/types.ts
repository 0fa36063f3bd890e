import type { IndexField } from '../query/planner.ts'
import type { ChangeRecord, JsonRecord, JsonValue, TextSplice, VersionVector } from '../../crdt/index.ts'
import type { Logger } from 'pino'
import type { KvStore } from '../storage/kv-store.ts'
import type { EntityMeta } from './entity-meta.ts'

/** A local write, as the API hands it to the store. */
export type LocalOp =
  | { readonly op: 'put'; readonly ns: string; readonly id: string; readonly value: JsonRecord }
  | { readonly op: 'patch'; readonly ns: string; readonly id: string; readonly value: JsonRecord }
  | { readonly op: 'delete'; readonly ns: string; readonly id: string }
  /** A Yjs update made by a Yjs client bound to the entity (y-websocket): applied as a local change. */
  | { readonly op: 'yjs'; readonly ns: string; readonly id: string; readonly update: Uint8Array }
  /** Resolve conflicts: writes the given fields on top of every sibling (allowed under `strict`). */
  | { readonly op: 'resolve'; readonly ns: string; readonly id: string; readonly value: JsonRecord }
  | { readonly op: 'text'; readonly ns: string; readonly id: string; readonly name: string; readonly splices: readonly TextSplice[] }

/** An entity as the API shows it. */
export interface EntityView {
  readonly ns: string
  readonly id: string
  readonly value: JsonRecord
  readonly version: VersionVector
  readonly updatedAt: string
  readonly deleted?: true
  /** Unresolved conflicts; `value` holds the merged winner of each field. */
  readonly conflicts?: readonly ConflictView[]
}

/** A field concurrent writes disagree on, as the API shows it. */
export interface ConflictView {
  readonly field: string
  /** Every concurrent write: the value it wrote (null: removed), its writer and its dot. */
  readonly values: readonly { readonly value: JsonValue | null; readonly origin: string; readonly version: VersionVector; readonly deleted?: true }[]
}

/** A conflict of one entity, as `GET /v1/conflicts` lists it. */
export interface EntityConflictView extends ConflictView {
  readonly ns: string
  readonly id: string
  /** The merged value every node shows (absent for a removed field). */
  readonly winner: JsonValue | null
}

/** One committed change, as announced to listeners (change feed, replication). */
export interface CommittedChange {
  readonly change: ChangeRecord
  /** The change record as stored (and as it travels). */
  readonly bytes: Uint8Array
  readonly feedSeq: number
  /** True when the change came from another node. */
  readonly remote: boolean
  /**
   * False when the change is only recorded (its dot, its log record) and nothing of it was
   * applied to the entity here: a push-only namespace, or a stale change (docs/tombstone-gc.md).
   */
  readonly applied: boolean
}

/** An entry of a namespace's change feed. */
export interface FeedEntry {
  readonly cursor: number
  readonly id: string
  readonly op: 'upsert' | 'delete'
  readonly version: VersionVector
  readonly value?: JsonRecord
  readonly conflicts?: readonly ConflictView[]
}

/**
 * The change-feed entries one durable group commit wrote, of every namespace: feed positions
 * `from` (exclusive) to `to` (inclusive) are this group's, and `entries` are the ones it kept (an
 * entity changed twice in the group keeps its last). A reader that had everything up to `from`
 * has everything up to `to` with these. A wipe or a tombstone purge removes entities without
 * entries: its batch has none, and names the namespaces it removed entities from in `removed`.
 */
export interface FeedBatch {
  readonly from: number
  readonly to: number
  /** Each with the entity's `updatedAt` (milliseconds), which a live query matches on. */
  readonly entries: readonly (FeedEntry & { readonly ns: string; readonly updatedAt: number })[]
  readonly removed?: readonly string[]
}

/** One group commit's LevelDB batch: its entries, and the time it took to write and fsync. */
export interface BatchTiming {
  readonly entries: number
  readonly seconds: number
}

/** An entity as stored: committed meta and Yjs state. */
export interface StoredEntity {
  readonly ns: string
  readonly id: string
  readonly meta: EntityMeta
  readonly state: Uint8Array
}

/** A point-in-time view of the store (see {@link EntityStore.openSnapshot}). */
export interface StoreSnapshot {
  /** The node vector at the snapshot: the entities hold exactly the changes it covers. */
  readonly vv: VersionVector
  entities(options?: { ns?: string }): AsyncGenerator<StoredEntity>
  close(): Promise<void>
}

/** Outcome of handing remote changes to the store. */
export interface RemoteApplyResult {
  readonly applied: number
  readonly duplicates: number
  /** Changes whose causal predecessors are not here yet; nothing of them was applied. */
  readonly deferred: readonly ChangeRecord[]
  /** Changes whose Yjs update does not parse; refused, nothing applied. */
  readonly invalid: readonly ChangeRecord[]
}

/** Tunables of the store. */
export interface EntityStoreOptions {
  /** Hot Y.Docs kept in memory. */
  readonly docCacheSize?: number
  /** Most operations committed in one LevelDB batch. */
  readonly maxGroupOps?: number
  /** Most operations waiting for a commit before writes are refused with OVERLOADED. */
  readonly maxQueuedOps?: number
  /** Wall clock, injectable for tests. */
  readonly now?: () => number
  /** Replication mode of a namespace (default: every namespace two-way). */
  readonly modeOf?: (ns: string) => NamespaceMode
  /** Conflict policy of a namespace (default: every namespace auto). */
  readonly conflictPolicyOf?: (ns: string) => ConflictPolicy
  /**
   * Grace period of a tombstone: a write to an entity deleted longer ago starts a new
   * incarnation, and only then may the tombstone be purged (docs/tombstone-gc.md). Default 24 h.
   */
  readonly tombstoneGraceMs?: number
  /**
   * When a large entity's commits store only their Yjs update (state-parts.ts): from a base of
   * `minBaseBytes` (default 4096), up to `maxDeltas` (default 256) before the base is rewritten.
   */
  readonly stateDeltas?: Partial<DeltaLimits>
  /**
   * Indexes declared in the config (`namespaces.X.indexes`), per namespace and name: created on
   * open (built in the background), replaced when their fields change, dropped when no longer
   * declared (docs/queries.md).
   */
  readonly indexes?: Readonly<Record<string, Readonly<Record<string, readonly IndexField[]>>>>
  /** Most entities a query may examine (`query.maxScan`, default 100,000). */
  readonly maxScan?: number
  /** Most bytes of unsent events a live query's stream holds (`query.liveBufferBytes`, default 8 MiB). */
  readonly liveBufferBytes?: number
}

/** See {@link EntityStoreOptions.stateDeltas}. */
export interface DeltaLimits {
  readonly minBaseBytes: number
  readonly maxDeltas: number
}

/** A tombstone as the GC sees it. */
export interface TombstoneInfo {
  readonly ns: string
  readonly id: string
  /** Latest time of its deletes (origin clocks). */
  readonly deletedAt: number
  /** Entity version vector: the purge is skipped if the entity moved past it. */
  readonly vv: VersionVector
}

/** Tombstone GC counters of the store. */
export interface GcStats {
  /** Tombstones purged (entity state and metadata removed). */
  purged: number
  /** Remote changes made on a superseded incarnation or a purged tombstone: recorded, not applied. */
  staleChanges: number
  /** Writes that started a new incarnation of a deleted entity (local and remote). */
  incarnations: number
}

/**
 * How a namespace replicates on this node: `two-way` (default); `pull-only` takes changes and
 * refuses local writes (READ_ONLY_NAMESPACE); `push-only` sends its own changes and keeps other
 * nodes' changes only in its log (to relay them), never applying them to its entities.
 */
export type NamespaceMode = 'two-way' | 'pull-only' | 'push-only'

/**
 * What a namespace does about conflicts: `auto` merges and records them; `strict` also refuses
 * writes to an entity with unresolved conflicts (409 UNRESOLVED_CONFLICT) until it is resolved.
 */
export type ConflictPolicy = 'auto' | 'strict'

/** What the store needs from the rest of the daemon. */
export interface EntityStoreComponents {
  readonly kv: KvStore
  readonly nodeId: string
  readonly logger: Logger
}

/** Outcome of merging snapshot entities. */
export interface SnapshotApplyResult {
  /** Entities whose state or metadata changed. */
  readonly merged: number
  /** Entities refused because their Yjs state does not parse. */
  readonly invalid: number
}

/**
 * What the store emits after each durable batch: `commit` (all its changes, once), `change` (each
 * change), `feed` (its change-feed entries) and `durable` (how long the batch took to write and sync).
 */
export interface EntityStoreEvents {
  change: [CommittedChange]
  commit: [readonly CommittedChange[]]
  feed: [FeedBatch]
  durable: [BatchTiming]
}
