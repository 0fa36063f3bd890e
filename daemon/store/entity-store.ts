import { EventEmitter } from 'node:events'
import {
  assertRecord,
  assertEntityId,
  assertNamespace,
  createEntityDoc,
  decodeChange,
  readText,
  type ChangeRecord,
  type EntitySnapshot,
  type VersionVector,
} from '../../crdt/index.ts'
import { CursorExpiredError, EntityNotFoundError, ReadOnlyNamespaceError } from '../errors.ts'
import type { KvStore } from '../storage/kv-store.ts'
import { Committer } from './committer.ts'
import { EntityDocs } from './doc-cache.ts'
import { IndexService } from './index-service.ts'
import { LiveQueries } from './live-query.ts'
import { decodeMeta } from './entity-meta.ts'
import { own } from './meta-records.ts'
import {
  changeLogRange,
  conflictRange,
  entityMetaKey,
  entityMetaRange,
  entityStateKey,
  feedRange,
  feedSeqOfKey,
  parseEntityMetaKey,
  tombstoneRange,
} from './keys.ts'
import { assertRecordLimits } from './record-limits.ts'
import { SnapshotView } from './snapshot-view.ts'
import { DEFAULT_DELTA_LIMITS, readStates } from './state-parts.ts'
import type {
  EntityConflictView,
  EntityStoreComponents,
  EntityStoreEvents,
  EntityStoreOptions,
  EntityView,
  FeedEntry,
  GcStats,
  LocalOp,
  NamespaceMode,
  RemoteApplyResult,
  SnapshotApplyResult,
  StoredEntity,
  TombstoneInfo,
} from './types.ts'
import { conflictViews, viewOf } from './views.ts'

/** The store's files as of one moment ({@link EntityStore.openCheckpoint}). */
export interface FilesCheckpoint {
  readonly dir: string
  readonly files: readonly string[]
  /** The store at that moment. */
  readonly view: SnapshotView
  /** Removes {@link dir}. */
  remove(): Promise<void>
}

export type * from './types.ts'
export { SnapshotView, splitEntityKey, type RawEntity } from './snapshot-view.ts'
export { conflictViews } from './views.ts'
export type { LiveEvent, LiveQuery, LiveSink } from './live-query.ts'

/**
 * Most keys a read outside the committer (an entity, a text, a page of a list) does on the event
 * loop's thread ({@link KvStore.getManyNow}). Larger reads go to a worker thread, so the event
 * loop serves requests meanwhile.
 */
const SYNC_READ_MAX_KEYS = 16
const textDecoder = new TextDecoder()

/**
 * The node's entities on a {@link KvStore}: every local write and every remote change goes
 * through one committer (committer.ts) that applies a group of operations to the Y.Docs and writes
 * them in one atomic, fsynced batch (group commit). A caller's promise resolves only after its
 * batch is durable. Reads see committed state only. After each batch it emits `commit` (all its
 * changes, once) and `change` (each change), and `durable` with how long the batch took to write
 * and sync.
 */
export class EntityStore extends EventEmitter<EntityStoreEvents> {
  readonly nodeId: string
  readonly #kv: KvStore
  readonly #docs: EntityDocs
  readonly #committer: Committer
  readonly #modeOf: (ns: string) => NamespaceMode
  readonly #graceMs: number
  /** Tombstone GC counters. */
  readonly gcStats: GcStats
  /** Secondary indexes and queries (docs/queries.md). */
  readonly indexes: IndexService
  /** Live queries (docs/queries.md, Live queries). */
  readonly live: LiveQueries
  readonly #declaredIndexes: NonNullable<EntityStoreOptions['indexes']>

  constructor(components: EntityStoreComponents, options: EntityStoreOptions = {}) {
    super()
    this.nodeId = components.nodeId
    this.#kv = components.kv
    this.#docs = new EntityDocs(options.docCacheSize ?? 1000)
    this.#modeOf = options.modeOf ?? (() => 'two-way')
    this.#graceMs = options.tombstoneGraceMs ?? 24 * 3600_000
    this.#committer = new Committer(
      { nodeId: components.nodeId, kv: components.kv, logger: components.logger, docs: this.#docs, events: this },
      {
        maxGroupOps: options.maxGroupOps ?? 2000,
        maxQueuedOps: options.maxQueuedOps ?? 50_000,
        now: options.now ?? Date.now,
        modeOf: this.#modeOf,
        policyOf: options.conflictPolicyOf ?? (() => 'auto'),
        graceMs: this.#graceMs,
        deltaLimits: { ...DEFAULT_DELTA_LIMITS, ...options.stateDeltas },
      },
    )
    this.gcStats = this.#committer.gcStats
    this.indexes = new IndexService(components.kv, this.#committer, components.logger, options.maxScan ?? 100_000)
    this.#declaredIndexes = options.indexes ?? {}
    const committer = this.#committer
    this.live = new LiveQueries(
      { kv: components.kv, events: this, catalog: () => committer.indexes, liveCount: (ns) => own(committer.counts, ns) ?? 0, maxScan: options.maxScan ?? 100_000 },
      options.liveBufferBytes ?? 8 * 1024 * 1024,
    )
    this.setMaxListeners(0) // one listener per change-feed stream and per replication peer
  }

  /** Node version vector: per origin, every change up to this seq is applied here. */
  get versionVector(): VersionVector {
    return this.#committer.nodeVv
  }

  /** Yjs clientID this process edits with (fresh on every open). */
  get clientId(): number {
    return this.#committer.clientId
  }

  /** Loads node metadata and takes a Yjs clientID never used before by this node. */
  async open(): Promise<void> {
    if (this.#committer.isOpen) return
    await this.#kv.open()
    await this.#committer.open()
    // The config's indexes; builds left unfinished by the last run resume (docs/queries.md).
    await this.indexes.declare(this.#declaredIndexes)
  }

  /** Refuses new work, waits for queued writes to commit, closes the storage. */
  async close(): Promise<void> {
    if (!this.#committer.isOpen) return
    await this.#committer.close()
    this.#docs.clear()
    await this.#kv.close()
  }

  // ---- writes ------------------------------------------------------------------------------

  /** Applies local operations atomically (one batch); resolves with the entities after them. */
  async write(ops: readonly LocalOp[]): Promise<EntityView[]> {
    for (const op of ops) {
      assertNamespace(op.ns)
      assertEntityId(op.id)
      if (op.op === 'put' || op.op === 'patch' || op.op === 'resolve') {
        assertRecordLimits(op.value)
        assertRecord(op.value)
      }
      if (this.#modeOf(op.ns) === 'pull-only') throw new ReadOnlyNamespaceError(op.ns)
    }
    const result = await this.#committer.enqueue({ kind: 'local', ops })
    return result.views
  }

  /**
   * Applies changes made on other nodes, in the order given. A change already here is counted as
   * a duplicate; a change whose predecessors (same origin, or its causal context) are missing is
   * deferred untouched, so a Yjs update never waits on missing dependencies.
   */
  async applyRemote(changes: readonly ChangeRecord[]): Promise<RemoteApplyResult> {
    const result = await this.#committer.enqueue({ kind: 'remote', changes })
    return result.remote as RemoteApplyResult
  }

  /**
   * Merges other replicas' entity states (snapshot catch-up). Idempotent; the node vector does
   * not move until {@link completeSnapshot}, so a crash halfway leaves the node asking again.
   */
  async applySnapshot(entities: readonly EntitySnapshot[]): Promise<SnapshotApplyResult> {
    const result = await this.#committer.enqueue({ kind: 'snapshot', entities })
    return result.snapshot as SnapshotApplyResult
  }

  /**
   * Ends a snapshot catch-up: everything up to `vv` is now here. The per-origin log below `vv`
   * may have holes, so the log floor rises with it (a peer needing older records gets a
   * snapshot from this node too).
   */
  async completeSnapshot(vv: VersionVector): Promise<void> {
    await this.#committer.enqueue({ kind: 'snapshot-end', vv })
  }

  /**
   * Forgets every entity of a namespace (state, metadata, feed and conflict entries) in one
   * batch, as the first step of reloading it from a peer. The change log and the node vector are
   * kept: they still describe what this node has relayed. Resolves with the entities removed.
   */
  async wipeNamespace(ns: string): Promise<number> {
    assertNamespace(ns)
    const result = await this.#committer.enqueue({ kind: 'wipe', ns })
    return result.views.length
  }

  /**
   * Purges tombstones the GC found stable: removes their state, metadata, feed and index entries
   * in one batch and raises the namespace's purge horizon. A tombstone that changed since (its
   * vector moved past the one given, or it is no longer deleted) is skipped. Resolves with the
   * number purged.
   */
  async purgeTombstones(tombstones: readonly TombstoneInfo[]): Promise<number> {
    if (tombstones.length === 0) return 0
    const result = await this.#committer.enqueue({ kind: 'purge', tombstones })
    return result.views.length
  }

  /** Tombstones in key order (the GC's index; no entity is decoded). */
  async *tombstones(ns?: string): AsyncGenerator<TombstoneInfo> {
    for await (const [key, value] of this.#kv.iterate(tombstoneRange(ns))) {
      const { deletedAt, vv } = JSON.parse(textDecoder.decode(value)) as { deletedAt: number; vv: VersionVector }
      yield { ...parseEntityMetaKey(key), deletedAt, vv }
    }
  }

  /** Per namespace, the merged vectors of the tombstones purged here (or adopted from a peer). */
  get purgeHorizon(): Readonly<Record<string, VersionVector>> {
    return this.#committer.horizon
  }

  /** The grace period of tombstones (see {@link EntityStoreOptions.tombstoneGraceMs}). */
  get tombstoneGraceMs(): number {
    return this.#graceMs
  }

  /**
   * Takes a peer's purge horizon for `ns` after reloading the namespace from that peer: the
   * entities here are now the peer's, purges included.
   */
  async adoptPurgeHorizon(ns: string, horizon: VersionVector): Promise<void> {
    assertNamespace(ns)
    await this.#committer.enqueue({ kind: 'purge', tombstones: [], adopt: { ns, horizon } })
  }

  /** Per origin, the seq up to which this node's log may miss records (taken by snapshot). */
  get logFloor(): VersionVector {
    return this.#committer.logFloor
  }


  // ---- reads (committed state only) --------------------------------------------------------

  /**
   * Reads a few keys on this thread when the store can: a worker thread's round trip costs more
   * than the reads, and under load the caller waits its turn for the callback. More keys, a
   * commit being written ({@link Committer.writing}), or a store that cannot now: through a worker
   * thread. (The committer reads its groups by its own rule, in #loadWorking.)
   */
  #read(keys: readonly string[]): (Uint8Array | undefined)[] | Promise<(Uint8Array | undefined)[]> {
    const now = keys.length <= SYNC_READ_MAX_KEYS && !this.#committer.writing ? this.#kv.getManyNow(keys) : undefined
    return now ?? this.#kv.getMany(keys)
  }

  /** The entity, or ENTITY_NOT_FOUND when it does not exist or is deleted. */
  async get(ns: string, id: string): Promise<EntityView> {
    assertNamespace(ns)
    assertEntityId(id)
    const [bytes] = await this.#read([entityMetaKey(ns, id)])
    const meta = bytes ? decodeMeta(bytes) : undefined
    if (!meta || meta.deleted) throw new EntityNotFoundError(ns, id)
    return viewOf(ns, id, meta)
  }

  /** Live entities of `ns` whose id starts with `prefix`, after `after`, in id order. */
  async list(ns: string, options: { prefix?: string; after?: string; limit: number }): Promise<{ items: EntityView[]; next?: string }> {
    assertNamespace(ns)
    const range = entityMetaRange(ns, options.prefix ?? '')
    const gt = options.after !== undefined ? entityMetaKey(ns, options.after) : undefined
    const items: EntityView[] = []
    let more = false
    const iterRange = gt !== undefined && gt >= range.gte ? { gt, lt: range.lt } : range
    for await (const [key, value] of this.#kv.iterate(iterRange)) {
      const meta = decodeMeta(value)
      if (meta.deleted) continue
      if (items.length === options.limit) {
        more = true
        break
      }
      items.push(viewOf(ns, parseEntityMetaKey(key).id, meta))
    }
    const last = items.at(-1)
    return more && last ? { items, next: last.id } : { items }
  }

  /** The committed Yjs state of an entity (deleted ones too), or undefined when it never existed. */
  async entityState(ns: string, id: string): Promise<Uint8Array | undefined> {
    assertNamespace(ns)
    assertEntityId(id)
    const [meta, base] = await this.#read([entityMetaKey(ns, id), entityStateKey(ns, id)])
    const { states } = await readStates(this.#kv, [{ ns, id, meta: meta ? decodeMeta(meta) : undefined, base }])
    return states[0]
  }

  /** The names of the entity's texts (sorted), with its version; ENTITY_NOT_FOUND when missing or deleted. */
  async textNames(ns: string, id: string): Promise<{ texts: string[]; version: VersionVector }> {
    assertNamespace(ns)
    assertEntityId(id)
    const [bytes] = await this.#read([entityMetaKey(ns, id)])
    const meta = bytes ? decodeMeta(bytes) : undefined
    if (!meta || meta.deleted) throw new EntityNotFoundError(ns, id)
    return { texts: [...meta.texts].sort(), version: meta.vv }
  }

  /** A text root of an entity, with the entity's version. */
  async getText(ns: string, id: string, name: string): Promise<{ text: string; version: VersionVector }> {
    assertNamespace(ns)
    assertEntityId(id)
    const key = entityMetaKey(ns, id)
    while (this.#docs.isDirty(key)) await this.#docs.nextGroupEnd()
    const loadedBefore = this.#docs.loadNumber(key)
    const [metaBytes, base] = await this.#read([key, entityStateKey(ns, id)])
    let meta = metaBytes ? decodeMeta(metaBytes) : undefined
    if (!meta || meta.deleted) throw new EntityNotFoundError(ns, id)
    let doc = this.#docs.get(key)
    if (!doc || this.#docs.isDirty(key)) {
      const read = await readStates(this.#kv, [{ ns, id, meta, base }])
      meta = read.metas[0]
      if (!meta || meta.deleted) throw new EntityNotFoundError(ns, id)
      doc = createEntityDoc(read.states[0], this.#committer.clientId)
      // Cached only when no group holding the entity ended meanwhile: it could have committed (and
      // cached) a newer document, which this one, built from the earlier reads, must not replace.
      if (this.#docs.loadNumber(key) === loadedBefore && !this.#docs.isDirty(key)) this.#docs.set(key, doc)
    }
    return { text: readText(doc, name), version: meta.vv }
  }

  /**
   * Throws CURSOR_EXPIRED when `cursor` is older than a tombstone purge in `ns`: the deletions
   * between it and the purge are gone, so resuming from it could miss some. Cursor 0 (the whole
   * namespace as it is now) is always fine.
   */
  assertCursor(ns: string, cursor: number): void {
    assertNamespace(ns)
    const floor = own(this.#committer.feedFloor, ns) ?? 0
    if (cursor > 0 && cursor < floor) throw new CursorExpiredError(ns, cursor, floor)
  }

  /**
   * Changes of `ns` after `cursor` in feed order (latest change per entity, deletes included),
   * at most `limit`; the returned cursor resumes after the last one.
   */
  async changes(ns: string, cursor: number, limit: number): Promise<{ changes: FeedEntry[]; cursor: number }> {
    this.assertCursor(ns, cursor)
    const entries: FeedEntry[] = []
    let last = cursor
    for await (const [key, value] of this.#kv.iterate({ ...feedRange(ns, cursor), limit })) {
      const entry = JSON.parse(textDecoder.decode(value)) as Omit<FeedEntry, 'cursor'>
      last = feedSeqOfKey(key)
      entries.push({ cursor: last, ...entry })
    }
    if (entries.length > 0) {
      const metas = await this.#read(entries.map((e) => entityMetaKey(ns, e.id)))
      entries.forEach((e, i) => {
        const bytes = metas[i]
        if (e.op !== 'upsert' || !bytes) return
        const meta = decodeMeta(bytes)
        const conflicts = conflictViews(meta)
        entries[i] = { ...e, value: meta.value, ...(conflicts.length > 0 && { conflicts }) }
      })
    }
    return { changes: entries, cursor: last }
  }

  /**
   * A consistent point-in-time view: the node vector and every entity (deleted ones too) with
   * its committed meta and Yjs state, as of one LevelDB snapshot, however long reading takes.
   * Close it when done.
   */
  async openSnapshot(): Promise<SnapshotView> {
    await this.#kv.whenOpen?.() // not while the database is closed for a checkpoint
    return SnapshotView.open(this.#kv.snapshot())
  }

  /**
   * The store's database files as of one moment, in a new directory, with a view of that same
   * moment (files backups; see KvStore.checkpoint: writes wait while the database is closed,
   * copied and reopened). Undefined where the store keeps no files (the memory store). The caller
   * closes the view and removes the directory.
   */
  async openCheckpoint(): Promise<FilesCheckpoint | undefined> {
    if (!this.#kv.checkpoint) return undefined
    const checkpoint = await this.#kv.checkpoint()
    try {
      return { dir: checkpoint.dir, files: checkpoint.files, view: await SnapshotView.open(checkpoint.snapshot), remove: checkpoint.remove }
    } catch (error) {
      await checkpoint.remove()
      throw error
    }
  }

  /** Every entity with its committed meta and state, in key order (from a snapshot). */
  async *entities(options: { ns?: string } = {}): AsyncGenerator<StoredEntity> {
    const snapshot = await this.openSnapshot()
    try {
      yield* snapshot.entities(options)
    } finally {
      await snapshot.close()
    }
  }

  /** Unresolved conflicts, one entry per entity and field, of one namespace or all. */
  async conflicts(options: { ns?: string; limit?: number } = {}): Promise<EntityConflictView[]> {
    if (options.ns !== undefined) assertNamespace(options.ns)
    const out: EntityConflictView[] = []
    const keys: { ns: string; id: string }[] = []
    for await (const [key] of this.#kv.iterate({ ...conflictRange(options.ns), limit: options.limit ?? 10_000 })) keys.push(parseEntityMetaKey(key))
    const metas = await this.#kv.getMany(keys.map(({ ns, id }) => entityMetaKey(ns, id)))
    keys.forEach(({ ns, id }, i) => {
      const bytes = metas[i]
      if (!bytes) return
      const meta = decodeMeta(bytes)
      for (const c of conflictViews(meta)) out.push({ ns, id, ...c, winner: c.field in meta.value ? (meta.value[c.field] ?? null) : null })
    })
    return out
  }

  /** The latest feed position (a cursor that skips the whole backlog). */
  get feedCursor(): number {
    return this.#committer.feedSeq
  }

  /** Change records of `origin` after `afterSeq`, in seq order (the per-origin log). */
  async *changeLog(origin: string, afterSeq: number, limit = -1): AsyncGenerator<ChangeRecord> {
    for await (const bytes of this.changeLogBytes(origin, afterSeq, limit)) yield decodeChange(bytes)
  }

  /** The same log as encoded records, as they travel (no decode, no re-encode). */
  async *changeLogBytes(origin: string, afterSeq: number, limit = -1): AsyncGenerator<Uint8Array> {
    for await (const [, value] of this.#kv.iterate({ ...changeLogRange(origin, afterSeq), limit })) yield value
  }

  /** Number of live (not deleted) entities per namespace. */
  get entityCounts(): Readonly<Record<string, number>> {
    return this.#committer.counts
  }
}
