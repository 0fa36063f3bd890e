import { randomInt } from 'node:crypto'
import { EventEmitter } from 'node:events'
import type { Logger } from 'pino'
import { failpoints } from '../failpoints.ts'
import type * as Y from 'yjs'
import {
  assertRecord,
  assertEntityId,
  assertNamespace,
  createEntityDoc,
  decodeChange,
  dominates,
  emptyVector,
  merge,
  readText,
  ValidationError,
  type ChangeRecord,
  type EntitySnapshot,
  type VersionVector,
} from '../../crdt/index.ts'
import { CursorExpiredError, EntityNotFoundError, ReadOnlyNamespaceError, UnavailableError } from '../errors.ts'
import type { KvBatchOp, KvStore } from '../storage/kv-store.ts'
import { decodeMeta, encodeMeta, utf8, type EntityMeta } from './entity-meta.ts'
import {
  changeLogKey,
  changeLogRange,
  conflictKey,
  conflictRange,
  entityDeltaRange,
  entityMetaKey,
  entityMetaRange,
  entityStateKey,
  entityStateRange,
  feedKey,
  feedRange,
  feedSeqOfKey,
  META_CLIENT_IDS,
  META_COUNTS,
  META_FEED_FLOOR,
  META_GC_HORIZON,
  META_LOG_FLOOR,
  META_FEED_SEQ,
  META_NODE_VV,
  META_REMOVED,
  parseEntityMetaKey,
  tombstoneKey,
  tombstoneRange,
} from './keys.ts'
import { Lru } from './lru.ts'
import { assertRecordLimits } from './record-limits.ts'
import {
  countsAfter,
  jobEntities,
  jobSize,
  RedoGroupWithout,
  RefusedBeforeEdit,
  type GroupOutcome,
  type GroupState,
  type Job,
  type JobInput,
  type JobResult,
  type NodeState,
  type PreparedGroup,
  WorkingEntity,
} from './jobs.ts'
import { applyJob, own, type ApplyContext } from './apply-rules.ts'
import { SnapshotView } from './snapshot-view.ts'
import { DEFAULT_DELTA_LIMITS, deltaKeysOf, readStates, stateWriteOps } from './state-parts.ts'
import type {
  BatchTiming,
  CommittedChange,
  ConflictPolicy,
  DeltaLimits,
  EntityConflictView,
  EntityStoreComponents,
  EntityStoreOptions,
  EntityView,
  FeedBatch,
  FeedEntry,
  GcStats,
  LocalOp,
  NamespaceMode,
  RemoteApplyResult,
  SnapshotApplyResult,
  StoredEntity,
  TombstoneInfo,
} from './types.ts'
import { conflictViews, feedBatchOf, viewOf } from './views.ts'

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

const EMPTY = new Uint8Array(0)
/**
 * Most keys a read outside the committer (an entity, a text, a page of a list) does on the event
 * loop's thread ({@link KvStore.getManyNow}). Larger reads go to a worker thread, so the event
 * loop serves requests meanwhile.
 */
const SYNC_READ_MAX_KEYS = 16
/**
 * Most keys the committer reads on the event loop's thread for a group's entities: the group is
 * applied on this thread right after anyway, and a worker thread's round trip costs about 30 us of
 * CPU (a missing key costs under 1 us on this thread, a cached one a few).
 */
const COMMIT_SYNC_READ_MAX_KEYS = 64
const textDecoder = new TextDecoder()

/**
 * The node's entities on a {@link KvStore}: every local write and every remote change goes
 * through one committer that applies a group of operations to the Y.Docs and writes them in one
 * atomic, fsynced batch (group commit). A caller's promise resolves only after its batch is
 * durable. Reads see committed state only. After each batch it emits `commit` (all its changes,
 * once) and `change` (each change), and `durable` with how long the batch took to write and sync.
 */
export class EntityStore extends EventEmitter<{
  change: [CommittedChange]
  commit: [readonly CommittedChange[]]
  feed: [FeedBatch]
  durable: [BatchTiming]
}> {
  readonly nodeId: string
  readonly #kv: KvStore
  readonly #log: Logger
  readonly #docs: Lru<string, Y.Doc>
  readonly #maxGroupOps: number
  readonly #maxQueuedOps: number
  readonly #now: () => number
  readonly #modeOf: (ns: string) => NamespaceMode
  readonly #policyOf: (ns: string) => ConflictPolicy
  readonly #graceMs: number
  /** Tombstone GC counters. */
  readonly gcStats: GcStats = { purged: 0, staleChanges: 0, incarnations: 0 }
  /** Per namespace, the merged vectors of the tombstones purged here (or adopted from a peer). */
  #horizon: Record<string, VersionVector> = {}
  /** Per namespace, the highest feed position a purge removed: older cursors may miss deletes. */
  #feedFloor: Record<string, number> = {}

  /** Local writes, wipes and purges, in order; counted against maxQueuedOps. */
  #queue: Job[] = []
  /** Remote changes and snapshots: go first, never refused for load. */
  #replicationQueue: Job[] = []
  #queuedOps = 0
  #running = false
  #open = false
  #closing = false
  #idle: PromiseWithResolvers<void> | undefined
  /** Set while the committer waits on a batch with nothing queued: a new job wakes it. */
  #wake: PromiseWithResolvers<void> | undefined
  /** Entities with uncommitted edits in their cached Y.Doc (a commit is in flight). */
  readonly #dirty = new Set<string>()
  /** Commit batches being written ({@link #commitBatch}): reads go through the pool meanwhile. */
  #batchesInFlight = 0
  /** Groups written so far (and wipes and purges): numbers {@link #loadedIn}. */
  #loads = 0
  /**
   * Per bucket of entity keys (a hash), the number of the last group written (or failed) that
   * held one of them, or of the last wipe or purge (every bucket): a reader that finds its
   * entity's bucket unchanged across its reads knows no commit touched the entity meanwhile.
   */
  readonly #loadedIn = new Float64Array(LOAD_BUCKETS)
  readonly #deltaLimits: DeltaLimits
  #commitDone: PromiseWithResolvers<void> | undefined

  #nodeVv: VersionVector = emptyVector()
  #logFloor: VersionVector = emptyVector()
  #feedSeq = 0
  #clientId = 0
  #clientIds: number[] = []
  #clientIdsDirty = false
  /** Live entities per namespace (persisted with every batch). */
  #counts: Readonly<Record<string, number>> = {}
  /** The node state after the last group applied in memory (written or being written). */
  #tip: NodeState = { nodeVv: emptyVector(), feedSeq: 0, logFloor: emptyVector(), counts: {} }
  /** Rollbacks so far: a group prepared before a rollback is applied again, not written. */
  #epoch = 0

  constructor(components: EntityStoreComponents, options: EntityStoreOptions = {}) {
    super()
    this.nodeId = components.nodeId
    this.#kv = components.kv
    this.#log = components.logger
    this.#docs = new Lru(options.docCacheSize ?? 1000)
    this.#maxGroupOps = options.maxGroupOps ?? 2000
    this.#maxQueuedOps = options.maxQueuedOps ?? 50_000
    this.#now = options.now ?? Date.now
    this.#modeOf = options.modeOf ?? (() => 'two-way')
    this.#policyOf = options.conflictPolicyOf ?? (() => 'auto')
    this.#graceMs = options.tombstoneGraceMs ?? 24 * 3600_000
    this.#deltaLimits = { ...DEFAULT_DELTA_LIMITS, ...options.stateDeltas }
    this.setMaxListeners(0) // one listener per change-feed stream and per replication peer
  }

  /** Node version vector: per origin, every change up to this seq is applied here. */
  get versionVector(): VersionVector {
    return this.#nodeVv
  }

  /** Yjs clientID this process edits with (fresh on every open). */
  get clientId(): number {
    return this.#clientId
  }

  /** Loads node metadata and takes a Yjs clientID never used before by this node. */
  async open(): Promise<void> {
    if (this.#open) return
    await this.#kv.open()
    const [vv, feed, ids, counts, floor, horizon, feedFloor] = await this.#kv.getMany([
      META_NODE_VV,
      META_FEED_SEQ,
      META_CLIENT_IDS,
      META_COUNTS,
      META_LOG_FLOOR,
      META_GC_HORIZON,
      META_FEED_FLOOR,
    ])
    this.#horizon = horizon ? (JSON.parse(textDecoder.decode(horizon)) as Record<string, VersionVector>) : {}
    this.#feedFloor = feedFloor ? (JSON.parse(textDecoder.decode(feedFloor)) as Record<string, number>) : {}
    this.#logFloor = floor ? (JSON.parse(textDecoder.decode(floor)) as VersionVector) : emptyVector()
    this.#counts = counts ? (JSON.parse(textDecoder.decode(counts)) as Record<string, number>) : {}
    this.#nodeVv = vv ? (JSON.parse(textDecoder.decode(vv)) as VersionVector) : emptyVector()
    this.#feedSeq = feed ? Number(textDecoder.decode(feed)) : 0
    this.#clientIds = ids ? (JSON.parse(textDecoder.decode(ids)) as number[]) : []
    this.#tip = this.#publishedState()
    this.#clientId = this.#freshClientId()
    // Persist the id before any edit is made with it: a restart after a crash can never reuse
    // a clientID whose Yjs clock may have gone backwards.
    await this.#kv.batch([{ type: 'put', key: META_CLIENT_IDS, value: this.#encodeClientIds() }], { sync: true })
    this.#clientIdsDirty = false
    this.#open = true
    this.#closing = false
  }

  /** Refuses new work, waits for queued writes to commit, closes the storage. */
  async close(): Promise<void> {
    if (!this.#open) return
    this.#closing = true
    if (this.#running || this.#queue.length > 0 || this.#replicationQueue.length > 0) {
      this.#idle ??= Promise.withResolvers()
      await this.#idle.promise
    }
    this.#open = false
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
    const result = await this.#enqueue({ kind: 'local', ops })
    return result.views
  }

  /**
   * Applies changes made on other nodes, in the order given. A change already here is counted as
   * a duplicate; a change whose predecessors (same origin, or its causal context) are missing is
   * deferred untouched, so a Yjs update never waits on missing dependencies.
   */
  async applyRemote(changes: readonly ChangeRecord[]): Promise<RemoteApplyResult> {
    const result = await this.#enqueue({ kind: 'remote', changes })
    return result.remote as RemoteApplyResult
  }

  /**
   * Merges other replicas' entity states (snapshot catch-up). Idempotent; the node vector does
   * not move until {@link completeSnapshot}, so a crash halfway leaves the node asking again.
   */
  async applySnapshot(entities: readonly EntitySnapshot[]): Promise<SnapshotApplyResult> {
    const result = await this.#enqueue({ kind: 'snapshot', entities })
    return result.snapshot as SnapshotApplyResult
  }

  /**
   * Ends a snapshot catch-up: everything up to `vv` is now here. The per-origin log below `vv`
   * may have holes, so the log floor rises with it (a peer needing older records gets a
   * snapshot from this node too).
   */
  async completeSnapshot(vv: VersionVector): Promise<void> {
    await this.#enqueue({ kind: 'snapshot-end', vv })
  }

  /**
   * Forgets every entity of a namespace (state, metadata, feed and conflict entries) in one
   * batch, as the first step of reloading it from a peer. The change log and the node vector are
   * kept: they still describe what this node has relayed. Resolves with the entities removed.
   */
  async wipeNamespace(ns: string): Promise<number> {
    assertNamespace(ns)
    const result = await this.#enqueue({ kind: 'wipe', ns })
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
    const result = await this.#enqueue({ kind: 'purge', tombstones })
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
    return this.#horizon
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
    await this.#enqueue({ kind: 'purge', tombstones: [], adopt: { ns, horizon } })
  }

  /** Per origin, the seq up to which this node's log may miss records (taken by snapshot). */
  get logFloor(): VersionVector {
    return this.#logFloor
  }

  #enqueue(input: JobInput): Promise<JobResult> {
    if (!this.#open || this.#closing) return Promise.reject(new UnavailableError('SHUTTING_DOWN', 'the store is closing'))
    const size = jobSize(input)
    const { promise, resolve, reject } = Promise.withResolvers<JobResult>()
    if (isReplicationJob(input)) {
      // Never refused for load: replication waits its turn (its sessions wait with it), and goes
      // ahead of queued local writes so that a write burst cannot stall convergence.
      this.#replicationQueue.push({ ...input, resolve, reject } as Job)
    } else {
      if (this.#queuedOps + size > this.#maxQueuedOps) {
        return Promise.reject(new UnavailableError('OVERLOADED', 'too many writes are waiting; retry later'))
      }
      this.#queue.push({ ...input, resolve, reject } as Job)
      this.#queuedOps += size
    }
    if (!this.#running) void this.#run()
    else this.#wake?.resolve()
    return promise
  }

  /**
   * The committer. Group commits are pipelined two deep: while one group's batch is being
   * written and fsynced, the next group is loaded and applied on top of it (its node vector,
   * feed position and counts continue from the tip), so the CPU work of a group overlaps the
   * previous group's fsync. Batches are still written one at a time and in order, and a group
   * that touches an entity of the group being written waits for it: every entity it loads from
   * storage is then committed there. Nothing is answered before its own batch is durable.
   */
  async #run(): Promise<void> {
    this.#running = true
    let writing: { done: Promise<void>; keys: ReadonlySet<string>; finished: boolean } | undefined
    const drain = async (): Promise<void> => {
      await writing?.done
      writing = undefined
    }
    try {
      for (;;) {
        if (writing?.finished) writing = undefined
        if (this.#queue.length === 0 && this.#replicationQueue.length === 0) {
          if (writing === undefined) break
          // Wait for the batch being written, or for new jobs to apply meanwhile.
          this.#wake = Promise.withResolvers()
          await Promise.race([writing.done, this.#wake.promise])
          this.#wake = undefined
          continue
        }
        const first = this.#replicationQueue.length > 0 ? undefined : (this.#queue[0] as Job)
        if (first?.kind === 'wipe' || first?.kind === 'purge') {
          await drain()
          this.#queue.shift()
          this.#queuedOps -= jobSize(first)
          if (first.kind === 'wipe') await this.#commitWipe(first)
          else await this.#commitPurge(first)
          this.#tip = this.#publishedState()
          continue
        }
        const group = first === undefined ? this.#takeMixedGroup() : this.#takeLocalGroup()
        const keys = new Set(group.flatMap((job) => jobEntities(job).map(({ ns, id }) => entityMetaKey(ns, id))))
        if (writing && [...keys].some((key) => writing?.keys.has(key))) await drain()
        const prepared = await this.#prepareGroup(group)
        if (prepared === undefined) continue
        const previous = writing?.done
        const next = { done: this.#writeGroup(prepared, previous), keys, finished: false }
        const finish = (): void => {
          next.finished = true
        }
        next.done.then(finish, finish)
        writing = next
        // At most one batch waits behind the one being written.
        if (previous) await previous
      }
    } finally {
      this.#running = false
      this.#idle?.resolve()
      this.#idle = undefined
    }
  }

  /** Local writes from the head of the queue, up to maxGroupOps (at least one job). */
  #takeLocalGroup(): Job[] {
    const group: Job[] = []
    let ops = 0
    while (this.#queue.length > 0) {
      const next = this.#queue[0] as Job
      const size = jobSize(next)
      if (next.kind === 'wipe' || next.kind === 'purge' || (group.length > 0 && ops + size > this.#maxGroupOps)) break
      group.push(next)
      this.#queue.shift()
      ops += size
    }
    this.#queuedOps -= ops
    return group
  }

  /**
   * A group led by replication jobs (at most half the group while local writes wait, so neither
   * starves), filled up with local writes.
   */
  #takeMixedGroup(): Job[] {
    const group: Job[] = []
    let ops = 0
    const localWaiting = this.#queue.length > 0 && this.#queue[0]?.kind === 'local'
    const replicationBudget = localWaiting ? Math.max(1, Math.floor(this.#maxGroupOps / 2)) : this.#maxGroupOps
    while (this.#replicationQueue.length > 0) {
      const size = jobSize(this.#replicationQueue[0] as Job)
      if (group.length > 0 && ops + size > replicationBudget) break
      group.push(this.#replicationQueue.shift() as Job)
      ops += size
    }
    let localOps = 0
    while (this.#queue.length > 0 && this.#queue[0]?.kind === 'local') {
      const size = jobSize(this.#queue[0])
      if (ops + size > this.#maxGroupOps) break
      group.push(this.#queue.shift() as Job)
      ops += size
      localOps += size
    }
    this.#queuedOps -= localOps
    return group
  }

  /** The node state readers see: that of the last durable batch. */
  #publishedState(): NodeState {
    return { nodeVv: this.#nodeVv, feedSeq: this.#feedSeq, logFloor: this.#logFloor, counts: this.#counts }
  }

  /** Puts jobs back at the head of their queues, in order (to be done again). */
  #requeue(jobs: readonly Job[]): void {
    const local = jobs.filter((j) => !isReplicationJob(j))
    this.#replicationQueue.unshift(...jobs.filter(isReplicationJob))
    this.#queue.unshift(...local)
    this.#queuedOps += local.reduce((n, j) => n + jobSize(j), 0)
  }

  /**
   * Forgets the in-memory edits of groups that will not be written: their documents leave the
   * cache, and the Yjs clientID changes, since the clocks those edits used are now unused.
   */
  #discardEdits(working: ReadonlyMap<string, WorkingEntity>): void {
    for (const key of working.keys()) {
      this.#docs.delete(key)
      this.#dirty.delete(key)
    }
    this.#rotateClientId()
  }

  /** Forgets a group's edits and puts its jobs back, to be applied again from the durable state. */
  #redo(working: ReadonlyMap<string, WorkingEntity>, jobs: readonly Job[]): void {
    this.#discardEdits(working)
    this.#requeue(jobs)
  }

  /**
   * Loads a group's entities and applies its jobs on top of the tip (the state after the groups
   * before it, durable or being written). Returns what to write, or undefined when the group was
   * put back (a job refused halfway, or a failure of the batch before it while loading).
   */
  async #prepareGroup(group: Job[]): Promise<PreparedGroup | undefined> {
    const start = this.#tip
    const epoch = this.#epoch
    const g: GroupState = { working: new Map(), nodeVv: start.nodeVv, feedSeq: start.feedSeq, logFloor: start.logFloor, committed: [], touched: false }
    const outcomes: GroupOutcome[] = []
    try {
      await this.#loadWorking(group, g.working)
      if (epoch !== this.#epoch) {
        // The batch being written failed meanwhile: the tip this group started from is gone.
        this.#redo(g.working, group)
        return undefined
      }
      const rules = this.#applyContext()
      for (const job of group) {
        // Each local job is validated in full before it touches a document, so a refused job
        // leaves no trace and the other jobs of the group go on.
        try {
          outcomes.push({ job, result: applyJob(rules, job, g) })
        } catch (error) {
          if (error instanceof RefusedBeforeEdit) outcomes.push({ job, error: error.cause })
          else if (job.kind === 'local' && (error instanceof ValidationError || error instanceof EntityNotFoundError)) {
            // Refused halfway: its edits are already in the documents. Redo the group without it.
            throw new RedoGroupWithout(job, error)
          } else throw error
        }
      }
    } catch (error) {
      if (error instanceof RedoGroupWithout) {
        error.job.reject(error.cause)
        this.#redo(g.working, group.filter((j) => j !== error.job))
        return undefined
      }
      this.#discardEdits(g.working)
      this.#log.error({ err: error }, 'applying a group of writes failed; the group was refused')
      for (const job of group) job.reject(error)
      return undefined
    }
    const write = g.committed.length > 0 || g.touched
    const counts = write ? countsAfter(start.counts, g.working) : start.counts
    const ops = write ? this.#batchOps(g, counts) : undefined
    const end: NodeState = { nodeVv: g.nodeVv, feedSeq: g.feedSeq, logFloor: g.logFloor, counts }
    this.#tip = end
    return { group, g, outcomes, ops, end, feedFrom: start.feedSeq, epoch, clientIds: this.#clientIds.length }
  }

  /**
   * Writes a prepared group once the batch before it is done, publishes its state and answers its
   * jobs. When the batch before it failed, the group was built on edits that are gone: it is put
   * back to be done again. When its own batch fails, its jobs are refused and the tip goes back
   * to the last durable state.
   */
  async #writeGroup(p: PreparedGroup, previous: Promise<void> | undefined): Promise<void> {
    const { group, g, outcomes, ops, end } = p
    let timing: BatchTiming | undefined
    try {
      await previous
      if (p.epoch !== this.#epoch) {
        this.#redo(g.working, group)
        return
      }
      if (ops !== undefined) {
        if (failpoints.ackBeforeCommitMs > 0) {
          // Failpoint (off in production): answer local writes first, commit later.
          for (const o of outcomes) if (o.job.kind === 'local' && o.result) o.job.resolve(o.result)
          await new Promise((resolve) => setTimeout(resolve, failpoints.ackBeforeCommitMs))
        }
        try {
          // Published only once durable: the vector, feed position and counts others read (status,
          // HELLO, the change feed) never show a group whose batch could still fail, and always
          // agree with each other.
          timing = await this.#commitBatch(ops, () => {
            this.#nodeVv = end.nodeVv
            this.#feedSeq = end.feedSeq
            this.#logFloor = end.logFloor
            this.#counts = end.counts
          })
        } catch (error) {
          // Nothing of this group is durable, nor of a group built on it: back to the last
          // durable state, and every group prepared on top of this one is put back.
          this.#epoch++
          this.#tip = this.#publishedState()
          this.#discardEdits(g.working)
          this.#log.error({ err: error }, 'commit failed; the group of writes was refused')
          for (const job of group) job.reject(error)
          return
        }
        if (p.clientIds === this.#clientIds.length) this.#clientIdsDirty = false
      }
    } finally {
      const done = ++this.#loads
      for (const key of g.working.keys()) {
        this.#dirty.delete(key)
        this.#loadedIn[loadBucket(key)] = done
      }
      this.#commitDone?.resolve()
      this.#commitDone = undefined
    }
    for (const { job, result, error } of outcomes) {
      if (error !== undefined) job.reject(error)
      else job.resolve(result as JobResult)
    }
    if (ops === undefined) return
    try {
      if (this.listenerCount('feed') > 0) this.emit('feed', feedBatchOf(g, p.feedFrom))
      if (g.committed.length > 0) {
        this.emit('commit', g.committed)
        for (const c of g.committed) this.emit('change', c)
      }
      // Last: the replicator's listeners above must not depend on a metrics listener.
      if (timing !== undefined) this.emit('durable', timing)
    } catch (error) {
      // A listener's bug must not stop the committer: the group is durable and answered.
      this.#log.error({ err: error }, 'a commit listener failed')
    }
  }

  /**
   * Writes a commit's batch (synced) and runs `publish`, which makes its state the node's, as soon
   * as it is durable. Meanwhile no read is done on this thread ({@link #read}): LevelDB shows a
   * batch as soon as it is written, before the code after the await has run, and a reader must
   * not see an entity that the node's vector, feed position and counts do not include yet. A read
   * through the pool is answered after the batch's own completion, so after `publish`.
   */
  async #commitBatch(ops: readonly KvBatchOp[], publish: () => void): Promise<BatchTiming> {
    this.#batchesInFlight++
    try {
      const started = performance.now()
      await this.#kv.batch(ops, { sync: true })
      publish()
      return { entries: ops.length, seconds: (performance.now() - started) / 1000 }
    } finally {
      this.#batchesInFlight--
    }
  }

  async #commitWipe(job: Job & { kind: 'wipe' }): Promise<void> {
    try {
      const ops: KvBatchOp[] = []
      const removed: EntityView[] = []
      for (const range of [entityMetaRange(job.ns), entityStateRange(job.ns), entityDeltaRange(job.ns), feedRange(job.ns, 0), conflictRange(job.ns), tombstoneRange(job.ns)]) {
        for await (const [key, value] of this.#kv.iterate(range)) {
          ops.push({ type: 'del', key })
          if (key.startsWith('e')) {
            const { id } = parseEntityMetaKey(key)
            removed.push(viewOf(job.ns, id, decodeMeta(value)))
            this.#docs.delete(key)
          }
        }
      }
      const counts = { ...this.#counts }
      delete counts[job.ns]
      ops.push({ type: 'put', key: META_COUNTS, value: utf8(JSON.stringify(counts)) })
      // The removal takes a feed position of its own (see META_REMOVED): backups notice it.
      const feedSeq = this.#feedSeq + 1
      const removedAt = await this.#kv.get(META_REMOVED)
      const marks = { ...(removedAt ? (JSON.parse(textDecoder.decode(removedAt)) as Record<string, number>) : {}), [job.ns]: feedSeq }
      ops.push({ type: 'put', key: META_REMOVED, value: utf8(JSON.stringify(marks)) })
      ops.push({ type: 'put', key: META_FEED_SEQ, value: utf8(String(feedSeq)) })
      await this.#commitBatch(ops, () => {
        this.#counts = counts
        this.#feedSeq = feedSeq
      })
      // An entity written again after the wipe starts a new Y.Doc whose clock restarts at 0: with
      // the same clientID its items would collide with those of its earlier life (still held by
      // peers and backups). A fresh clientID keeps every (client, clock) pair unique.
      this.#rotateClientId()
      job.resolve({ views: removed })
    } catch (error) {
      this.#log.error({ err: error, ns: job.ns }, 'wiping a namespace failed')
      job.reject(error)
    } finally {
      this.#loadedIn.fill(++this.#loads)
    }
  }

  async #commitPurge(job: Job & { kind: 'purge' }): Promise<void> {
    try {
      const ops: KvBatchOp[] = []
      const purged: EntityView[] = []
      const horizon = { ...this.#horizon }
      const feedFloor = { ...this.#feedFloor }
      const metas = await this.#kv.getMany(job.tombstones.map((t) => entityMetaKey(t.ns, t.id)))
      job.tombstones.forEach((t, i) => {
        const bytes = metas[i]
        const meta = bytes ? decodeMeta(bytes) : undefined
        // Moved on since the GC looked (a late change, a new incarnation): not purged now.
        if (!meta || !meta.deleted || !dominates(t.vv, meta.vv)) return
        const key = entityMetaKey(t.ns, t.id)
        ops.push({ type: 'del', key }, { type: 'del', key: entityStateKey(t.ns, t.id) }, { type: 'del', key: tombstoneKey(t.ns, t.id) })
        for (const delta of deltaKeysOf(t.ns, t.id, meta.stateParts)) ops.push({ type: 'del', key: delta })
        ops.push({ type: 'del', key: conflictKey(t.ns, t.id) })
        if (meta.feedSeq > 0) ops.push({ type: 'del', key: feedKey(t.ns, meta.feedSeq) })
        horizon[t.ns] = merge(own(horizon, t.ns) ?? emptyVector(), meta.vv)
        feedFloor[t.ns] = Math.max(own(feedFloor, t.ns) ?? 0, meta.feedSeq)
        this.#docs.delete(key)
        purged.push(viewOf(t.ns, t.id, meta))
      })
      if (job.adopt) horizon[job.adopt.ns] = merge(own(horizon, job.adopt.ns) ?? emptyVector(), job.adopt.horizon)
      let feedSeq = this.#feedSeq
      if (purged.length > 0) {
        // Entities were removed: like a wipe, the removal takes a feed position of its own in
        // each namespace it touched (META_REMOVED), so backups notice it.
        feedSeq++
        const removedAt = await this.#kv.get(META_REMOVED)
        const marks: Record<string, number> = removedAt ? (JSON.parse(textDecoder.decode(removedAt)) as Record<string, number>) : {}
        for (const { ns } of purged) marks[ns] = feedSeq
        ops.push({ type: 'put', key: META_REMOVED, value: utf8(JSON.stringify(marks)) })
        ops.push({ type: 'put', key: META_FEED_SEQ, value: utf8(String(feedSeq)) })
      }
      if (purged.length > 0 || job.adopt) {
        ops.push({ type: 'put', key: META_GC_HORIZON, value: utf8(JSON.stringify(horizon)) })
        ops.push({ type: 'put', key: META_FEED_FLOOR, value: utf8(JSON.stringify(feedFloor)) })
        await this.#commitBatch(ops, () => {
          this.#horizon = horizon
          this.#feedFloor = feedFloor
          this.#feedSeq = feedSeq
        })
        this.gcStats.purged += purged.length
      }
      job.resolve({ views: purged })
    } catch (error) {
      this.#log.error({ err: error }, 'purging tombstones failed')
      job.reject(error)
    } finally {
      this.#loadedIn.fill(++this.#loads)
    }
  }

  async #loadWorking(group: readonly Job[], working: Map<string, WorkingEntity>): Promise<void> {
    const wanted = new Map<string, { ns: string; id: string }>()
    for (const job of group) {
      for (const { ns, id } of jobEntities(job)) wanted.set(entityMetaKey(ns, id), { ns, id })
    }
    // The state of an entity whose document is cached is not read: the document is its state (a
    // large text's state can be hundreds of KB, read and copied for nothing on every commit).
    const entities = [...wanted].map(([key, { ns, id }]) => ({ key, ns, id, readState: !this.#docs.has(key) }))
    const keys = entities.flatMap(({ ns, id, readState }) => (readState ? [entityMetaKey(ns, id), entityStateKey(ns, id)] : [entityMetaKey(ns, id)]))
    // None of these entities is in the batch being written ({@link #run} waits for it when one
    // is), so that batch landing during the read changes nothing it reads: on this thread even
    // then, which saves a worker thread's round trip per group.
    const values = (keys.length <= COMMIT_SYNC_READ_MAX_KEYS ? this.#kv.getManyNow(keys) : undefined) ?? (await this.#kv.getMany(keys))
    const metas = new Map<string, EntityMeta | undefined>()
    const bases = new Map<string, Uint8Array | undefined>()
    // The cached documents as of the reads (taken before any other await).
    const docs = new Map<string, Y.Doc | undefined>()
    let at = 0
    for (const { key, readState } of entities) {
      const metaBytes = values[at++]
      metas.set(key, metaBytes ? decodeMeta(metaBytes) : undefined)
      if (readState) bases.set(key, values[at++])
      docs.set(key, this.#docs.get(key))
    }
    // A document evicted from the cache while the reads ran: its state is read now.
    const evicted = entities.filter(({ key, readState }) => !readState && docs.get(key) === undefined)
    if (evicted.length > 0) {
      const late = await this.#kv.getMany(evicted.map(({ ns, id }) => entityStateKey(ns, id)))
      evicted.forEach(({ key }, i) => bases.set(key, late[i]))
    }
    // The deltas stored after the bases read (none of these entities is being committed now).
    const reads = entities.filter(({ key }) => docs.get(key) === undefined)
    const { states } = await readStates(
      this.#kv,
      reads.map(({ key, ns, id }) => ({ ns, id, meta: metas.get(key), base: bases.get(key) })),
    )
    const stateOf = new Map(reads.map(({ key }, i) => [key, states[i]]))
    for (const { key, ns, id } of entities) {
      const committed = metas.get(key)
      const open = (state: Uint8Array | undefined): Y.Doc => {
        const doc = createEntityDoc(state, this.#clientId)
        this.#docs.set(key, doc)
        return doc
      }
      working.set(key, new WorkingEntity(ns, id, committed, { doc: docs.get(key), state: stateOf.get(key) }, open))
      this.#dirty.add(key)
    }
  }

  /** What the apply rules read of the store, as it is now. */
  #applyContext(): ApplyContext {
    return {
      nodeId: this.nodeId,
      clientId: this.#clientId,
      now: this.#now,
      graceMs: this.#graceMs,
      modeOf: this.#modeOf,
      policyOf: this.#policyOf,
      horizon: this.#horizon,
      docs: this.#docs,
      gcStats: this.gcStats,
      log: this.#log,
    }
  }

  #batchOps(g: GroupState, counts: Record<string, number>): KvBatchOp[] {
    const ops: KvBatchOp[] = []
    for (const entity of g.working.values()) {
      if (!entity.changed || !entity.meta) continue
      const { ns, id, committed: before } = entity
      const stateParts = stateWriteOps(ns, id, before?.stateParts, before !== undefined, entity.meta.feedSeq, { updates: entity.updates, encodeWhole: () => entity.encodeState() }, ops, this.#deltaLimits)
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
      const entry = { id, op: meta.deleted ? 'delete' : 'upsert', version: meta.vv }
      ops.push({ type: 'put', key: feedKey(ns, meta.feedSeq), value: utf8(JSON.stringify(entry)) })
    }
    for (const { change, bytes } of g.committed) ops.push({ type: 'put', key: changeLogKey(change.origin, change.seq), value: bytes })
    ops.push({ type: 'put', key: META_LOG_FLOOR, value: utf8(JSON.stringify(g.logFloor)) })
    ops.push({ type: 'put', key: META_NODE_VV, value: utf8(JSON.stringify(g.nodeVv)) })
    ops.push({ type: 'put', key: META_FEED_SEQ, value: utf8(String(g.feedSeq)) })
    ops.push({ type: 'put', key: META_COUNTS, value: utf8(JSON.stringify(counts)) })
    if (this.#clientIdsDirty) ops.push({ type: 'put', key: META_CLIENT_IDS, value: this.#encodeClientIds() })
    return ops
  }

  #freshClientId(): number {
    const used = new Set(this.#clientIds)
    let id: number
    do id = randomInt(1, 2 ** 32 - 1)
    while (used.has(id))
    this.#clientIds.push(id)
    return id
  }

  #rotateClientId(): void {
    this.#clientId = this.#freshClientId()
    this.#clientIdsDirty = true
    this.#docs.clear()
  }

  #encodeClientIds(): Uint8Array {
    return utf8(JSON.stringify(this.#clientIds))
  }

  // ---- reads (committed state only) --------------------------------------------------------

  /**
   * Reads a few keys on this thread when the store can: a worker thread's round trip costs more
   * than the reads, and under load the caller waits its turn for the callback. More keys, a
   * commit being written ({@link #commitBatch}), or a store that cannot now: through a worker
   * thread. (The committer reads its groups by its own rule, in #loadWorking.)
   */
  #read(keys: readonly string[]): (Uint8Array | undefined)[] | Promise<(Uint8Array | undefined)[]> {
    const now = keys.length <= SYNC_READ_MAX_KEYS && this.#batchesInFlight === 0 ? this.#kv.getManyNow(keys) : undefined
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

  /** A text root of an entity, with the entity's version. */
  async getText(ns: string, id: string, name: string): Promise<{ text: string; version: VersionVector }> {
    assertNamespace(ns)
    assertEntityId(id)
    const key = entityMetaKey(ns, id)
    while (this.#dirty.has(key)) {
      this.#commitDone ??= Promise.withResolvers()
      await this.#commitDone.promise
    }
    const bucket = loadBucket(key)
    const loadedBefore = this.#loadedIn[bucket]
    const [metaBytes, base] = await this.#read([key, entityStateKey(ns, id)])
    let meta = metaBytes ? decodeMeta(metaBytes) : undefined
    if (!meta || meta.deleted) throw new EntityNotFoundError(ns, id)
    let doc = this.#docs.get(key)
    if (!doc || this.#dirty.has(key)) {
      const read = await readStates(this.#kv, [{ ns, id, meta, base }])
      meta = read.metas[0]
      if (!meta || meta.deleted) throw new EntityNotFoundError(ns, id)
      doc = createEntityDoc(read.states[0], this.#clientId)
      // Cached only when no group holding the entity ended meanwhile: it could have committed (and
      // cached) a newer document, which this one, built from the earlier reads, must not replace.
      if (this.#loadedIn[bucket] === loadedBefore && !this.#dirty.has(key)) this.#docs.set(key, doc)
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
    const floor = own(this.#feedFloor, ns) ?? 0
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
    return this.#feedSeq
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
    return this.#counts
  }
}

/** Remote changes and snapshot merges (as opposed to local writes, wipes and purges). */
function isReplicationJob(job: JobInput): boolean {
  return job.kind === 'remote' || job.kind === 'snapshot' || job.kind === 'snapshot-end'
}

/** Buckets of {@link EntityStore}'s load numbers (a power of two). */
const LOAD_BUCKETS = 4096

/** The bucket of an entity key (FNV-1a). */
function loadBucket(key: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193)
  return (h >>> 0) & (LOAD_BUCKETS - 1)
}
