/**
 * The committer's work items and the state of one group commit: internal to the entity store.
 */
import * as Y from 'yjs'
import type { ChangeRecord, EntityEdit, EntitySnapshot, VersionVector } from '../../crdt/index.ts'
import type { KvBatchOp } from '../storage/index.ts'
import type { EntityMeta } from './entity-meta.ts'
import type { IndexAction, IndexOutcome } from './index-jobs.ts'
import type { CommittedChange, EntityView, LocalOp, RemoteApplyResult, SnapshotApplyResult, TombstoneInfo } from './types.ts'

/** A local job refused by validation, before it touched any document. */
export class RefusedBeforeEdit extends Error {
  constructor(cause: unknown) {
    super('refused before edit', { cause })
  }
}

/** A local job refused after it edited documents: the group is redone without it. */
export class RedoGroupWithout extends Error {
  readonly job: Job
  constructor(job: Job, cause: unknown) {
    super('redo group without job', { cause })
    this.job = job
  }
}

/** What a job asks the committer to do. */
export type JobInput =
  | { readonly kind: 'local'; readonly ops: readonly LocalOp[] }
  | { readonly kind: 'remote'; readonly changes: readonly ChangeRecord[] }
  | { readonly kind: 'snapshot'; readonly entities: readonly EntitySnapshot[] }
  | { readonly kind: 'snapshot-end'; readonly vv: VersionVector }
  | { readonly kind: 'wipe'; readonly ns: string }
  | { readonly kind: 'index'; readonly action: IndexAction }
  | {
      readonly kind: 'purge'
      readonly tombstones: readonly TombstoneInfo[]
      /** Raise the namespace's horizon to a peer's (after reloading the namespace from it). */
      readonly adopt?: { readonly ns: string; readonly horizon: VersionVector }
    }

export type Job = JobInput & {
  readonly resolve: (value: JobResult) => void
  readonly reject: (error: unknown) => void
}

/** The state a group of jobs builds up before its one batch is written. */
export interface GroupState {
  readonly working: Map<string, WorkingEntity>
  nodeVv: VersionVector
  feedSeq: number
  logFloor: VersionVector
  readonly committed: CommittedChange[]
  /** Something besides change records needs writing (snapshot merges, vectors). */
  touched: boolean
}

/** The node-level state a group continues from and leaves behind. */
export interface NodeState {
  readonly nodeVv: VersionVector
  readonly feedSeq: number
  readonly logFloor: VersionVector
  /** Live entities per namespace. */
  readonly counts: Readonly<Record<string, number>>
}

/** What became of one job of a group: its result, or why it was refused. */
export interface GroupOutcome {
  readonly job: Job
  readonly result?: JobResult
  readonly error?: unknown
}

/** A group applied in memory, waiting for its batch to be written. */
export interface PreparedGroup {
  readonly group: readonly Job[]
  readonly g: GroupState
  readonly outcomes: readonly GroupOutcome[]
  /** The batch; undefined when the group changed nothing. */
  readonly ops: readonly KvBatchOp[] | undefined
  /** The node state once the batch is durable. */
  readonly end: NodeState
  /** The feed position the group started from (its entries come after it). */
  readonly feedFrom: number
  /** The store's rollback count when the group was prepared (a rollback since voids it). */
  readonly epoch: number
  /** How many Yjs clientIDs the batch records. */
  readonly clientIds: number
}

export function jobSize(job: JobInput): number {
  switch (job.kind) {
    case 'local':
      return job.ops.length
    case 'remote':
      return job.changes.length
    case 'snapshot':
      return job.entities.length
    case 'snapshot-end':
    case 'wipe':
    case 'index':
      return 1
    case 'purge':
      return Math.max(1, job.tombstones.length)
  }
}

export function jobEntities(job: JobInput): readonly { readonly ns: string; readonly id: string }[] {
  switch (job.kind) {
    case 'local':
      return job.ops
    case 'remote':
      return job.changes
    case 'snapshot':
      return job.entities
    case 'snapshot-end':
    case 'wipe':
    case 'purge':
    case 'index':
      return []
  }
}

export interface JobResult {
  readonly views: EntityView[]
  readonly remote?: RemoteApplyResult
  readonly snapshot?: SnapshotApplyResult
  readonly index?: IndexOutcome
}

/**
 * Working state of one entity during a group commit. Its Y.Doc is built only when something
 * needs it: a new entity's first write is encoded without one (`freshRecordEdit`), and an entity
 * whose document nothing touched keeps its stored state as it is.
 */
export class WorkingEntity {
  readonly ns: string
  readonly id: string
  /** Committed meta at the start of the group (undefined: new entity). */
  readonly committed: EntityMeta | undefined
  meta: EntityMeta | undefined
  changed = false
  #doc: Y.Doc | undefined
  /** The encoded state while no document is built (stored, or written by the fast path). */
  #state: Uint8Array | undefined
  /** The Yjs updates applied to the document in this group; null once the state was replaced. */
  #updates: Uint8Array[] | null = []
  readonly #open: (state: Uint8Array | undefined) => Y.Doc

  constructor(
    ns: string,
    id: string,
    committed: EntityMeta | undefined,
    loaded: { readonly doc: Y.Doc | undefined; readonly state: Uint8Array | undefined },
    open: (state: Uint8Array | undefined) => Y.Doc,
  ) {
    this.ns = ns
    this.id = id
    this.committed = committed
    this.meta = committed
    this.#doc = loaded.doc
    this.#state = loaded.state
    this.#open = open
  }

  /** The entity's document, built from its state on first use. */
  get doc(): Y.Doc {
    if (this.#doc === undefined) {
      this.#doc = this.#open(this.#state)
      this.#state = undefined
    }
    return this.#doc
  }

  /** Replaced by a fresh document when a change starts a new incarnation. */
  set doc(doc: Y.Doc) {
    this.#doc = doc
    this.#state = undefined
    this.#updates = null
  }

  /** True when nothing of the entity exists yet: no meta, no stored state, no document. */
  get isNew(): boolean {
    return this.meta === undefined && this.#doc === undefined && this.#state === undefined
  }

  /** Takes the state a write made without a document (see {@link isNew}). */
  setState(state: Uint8Array): void {
    this.#state = state
    this.#updates = null
  }

  /**
   * Records a Yjs update just applied to the document, so that the commit may store it alone
   * (state-parts.ts). Every edit of the document must be recorded here or by {@link replaced}.
   */
  applied(update: Uint8Array | null): void {
    if (update !== null && update.length > 0) this.#updates?.push(update)
  }

  /** The document took more than recorded updates (a merged snapshot): the commit stores it whole. */
  replaced(): void {
    this.#updates = null
  }

  /** The updates applied in this group, in order; null when the state must be stored whole. */
  get updates(): readonly Uint8Array[] | null {
    return this.#updates
  }

  /** The state to store: the document's, or the state as it was loaded or written. */
  encodeState(): Uint8Array {
    return this.#doc === undefined && this.#state !== undefined ? this.#state : Y.encodeStateAsUpdate(this.doc)
  }
}

/** Live-entity counts after the group's changes. */
export function countsAfter(counts: Readonly<Record<string, number>>, working: Map<string, WorkingEntity>): Record<string, number> {
  const out = { ...counts }
  for (const { ns, committed, meta, changed } of working.values()) {
    if (!changed || !meta) continue
    const delta = Number(!meta.deleted) - Number(committed !== undefined && !committed.deleted)
    if (delta !== 0) out[ns] = (out[ns] ?? 0) + delta
    if (out[ns] === 0) delete out[ns]
  }
  return out
}

/** True when `update` parses as a Yjs V1 update (checked before it may touch a document). */
export function isWellFormedUpdate(update: Uint8Array): boolean {
  if (update.length === 0) return true
  try {
    Y.decodeUpdate(update)
    return true
  } catch {
    return false
  }
}

export function mergeEdits(a: EntityEdit, b: EntityEdit): EntityEdit {
  const updates = [a.update, b.update].filter((u): u is Uint8Array => u !== null)
  return {
    update: updates.length === 0 ? null : updates.length === 1 ? (updates[0] as Uint8Array) : Y.mergeUpdates(updates),
    fields: [...new Set([...a.fields, ...b.fields])].sort(),
    texts: [...new Set([...a.texts, ...b.texts])].sort(),
  }
}
