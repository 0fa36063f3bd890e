/**
 * The committer: the one writer of the store (entity-store.ts is its facade). It takes jobs from
 * its queues (job-queues.ts), loads and applies them a group at a time (group-load.ts,
 * apply-rules.ts) and writes each group in one atomic, fsynced batch (group-batch.ts); wipes and
 * purges run alone (maintenance.ts). Nothing is acknowledged before its batch is durable.
 */
import { randomInt } from 'node:crypto'
import type { EventEmitter } from 'node:events'
import type { Logger } from 'pino'
import { emptyVector, MeshsyncError, ValidationError, type VersionVector } from '../../crdt/index.ts'
import { EntityNotFoundError, UnavailableError } from '../errors.ts'
import { failpoints } from '../failpoints.ts'
import type { KvBatchOp, KvStore } from '../storage/kv-store.ts'
import { applyJob, type ApplyContext } from './apply-rules.ts'
import type { EntityDocs } from './doc-cache.ts'
import { groupBatchOps } from './group-batch.ts'
import { planIndexJob } from './index-jobs.ts'
import { indexCatalogRecord, indexesOf, type IndexCatalog, type NamedIndex } from './indexes.ts'
import { entityMetaKey } from './keys.ts'
import {
  countsAfter,
  jobEntities,
  RedoGroupWithout,
  RefusedBeforeEdit,
  type GroupOutcome,
  type GroupState,
  type Job,
  type JobInput,
  type JobResult,
  type NodeState,
  type PreparedGroup,
  type WorkingEntity,
} from './jobs.ts'
import { loadGroup } from './group-load.ts'
import { JobQueues } from './job-queues.ts'
import { planPurge, planWipe } from './maintenance.ts'
import { clientIdsRecord, readNodeRecords } from './meta-records.ts'
import type { BatchTiming, ConflictPolicy, DeltaLimits, EntityStoreEvents, GcStats, NamespaceMode } from './types.ts'
import { feedBatchOf } from './views.ts'


/** What the committer works with. */
export interface CommitterComponents {
  readonly nodeId: string
  readonly kv: KvStore
  readonly logger: Logger
  readonly docs: EntityDocs
  /** Where the committer announces its batches (the store). */
  readonly events: EventEmitter<EntityStoreEvents>
}

/** The committer's settings (see {@link EntityStoreOptions}). */
export interface CommitterOptions {
  readonly maxGroupOps: number
  readonly maxQueuedOps: number
  readonly now: () => number
  readonly modeOf: (ns: string) => NamespaceMode
  readonly policyOf: (ns: string) => ConflictPolicy
  readonly graceMs: number
  readonly deltaLimits: DeltaLimits
}

/**
 * The store's one writer: every local write, remote change, snapshot merge, wipe and purge is a
 * job in its queues, applied in groups (apply-rules.ts) and written in one atomic, fsynced batch
 * per group. It owns the node's state (vector, feed position, counts, purge horizon, Yjs
 * clientIDs) and publishes it only once durable.
 */
export class Committer {
  readonly nodeId: string
  readonly #kv: KvStore
  readonly #log: Logger
  readonly #docs: EntityDocs
  readonly #events: EventEmitter<EntityStoreEvents>
  readonly #queues: JobQueues
  readonly #now: () => number
  readonly #modeOf: (ns: string) => NamespaceMode
  readonly #policyOf: (ns: string) => ConflictPolicy
  readonly #graceMs: number
  readonly #deltaLimits: DeltaLimits
  /** Tombstone GC counters. */
  readonly gcStats: GcStats = { purged: 0, staleChanges: 0, incarnations: 0 }
  /** Per namespace, the merged vectors of the tombstones purged here (or adopted from a peer). */
  #horizon: Record<string, VersionVector> = {}
  /** Per namespace, the highest feed position a purge removed: older cursors may miss deletes. */
  #feedFloor: Record<string, number> = {}
  /** Secondary indexes (indexes.ts); changed only by index jobs, which run alone. */
  #indexes: IndexCatalog = {}
  /** Per namespace, its indexes as a list (cleared when the catalog changes). */
  #indexLists = new Map<string, readonly NamedIndex[]>()

  #running = false
  #open = false
  #closing = false
  #idle: PromiseWithResolvers<void> | undefined
  /** Set while the committer waits on a batch with nothing queued: a new job wakes it. */
  #wake: PromiseWithResolvers<void> | undefined
  /** Commit batches being written ({@link #commitBatch}): reads go through the pool meanwhile. */
  #batchesInFlight = 0

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

  constructor(components: CommitterComponents, options: CommitterOptions) {
    this.nodeId = components.nodeId
    this.#kv = components.kv
    this.#log = components.logger
    this.#docs = components.docs
    this.#events = components.events
    this.#queues = new JobQueues(options)
    this.#now = options.now
    this.#modeOf = options.modeOf
    this.#policyOf = options.policyOf
    this.#graceMs = options.graceMs
    this.#deltaLimits = options.deltaLimits
  }

  get isOpen(): boolean {
    return this.#open
  }

  /** Node version vector: per origin, every change up to this seq is applied here. */
  get nodeVv(): VersionVector {
    return this.#nodeVv
  }

  /** Per origin, the seq up to which this node's log may miss records (taken by snapshot). */
  get logFloor(): VersionVector {
    return this.#logFloor
  }

  /** The latest durable feed position. */
  get feedSeq(): number {
    return this.#feedSeq
  }

  /** Live entities per namespace. */
  get counts(): Readonly<Record<string, number>> {
    return this.#counts
  }

  /** Per namespace, the merged vectors of the tombstones purged here (or adopted from a peer). */
  get horizon(): Readonly<Record<string, VersionVector>> {
    return this.#horizon
  }

  /** Per namespace, the highest feed position a purge removed. */
  get feedFloor(): Readonly<Record<string, number>> {
    return this.#feedFloor
  }

  /** The secondary indexes, as durable. */
  get indexes(): IndexCatalog {
    return this.#indexes
  }

  #indexesOf = (ns: string): readonly NamedIndex[] => {
    let list = this.#indexLists.get(ns)
    if (list === undefined) {
      list = indexesOf(this.#indexes, ns)
      this.#indexLists.set(ns, list)
    }
    return list
  }

  /** Yjs clientID this process edits with (fresh on every open). */
  get clientId(): number {
    return this.#clientId
  }

  /** True while a commit batch is being written. */
  get writing(): boolean {
    return this.#batchesInFlight > 0
  }

  /** Loads node metadata (the storage is open) and takes a Yjs clientID never used before by this node. */
  async open(): Promise<void> {
    const records = await readNodeRecords(this.#kv)
    this.#horizon = records.horizon
    this.#feedFloor = records.feedFloor
    this.#logFloor = records.logFloor
    this.#counts = records.counts
    this.#nodeVv = records.nodeVv
    this.#feedSeq = records.feedSeq
    this.#clientIds = records.clientIds
    this.#indexes = indexCatalogRecord.decode(await this.#kv.get(indexCatalogRecord.key))
    this.#indexLists.clear()
    this.#tip = this.#publishedState()
    this.#clientId = this.#freshClientId()
    // Persist the id before any edit is made with it: a restart after a crash can never reuse
    // a clientID whose Yjs clock may have gone backwards.
    await this.#kv.batch([clientIdsRecord.put(this.#clientIds)], { sync: true })
    this.#clientIdsDirty = false
    this.#open = true
    this.#closing = false
  }

  /** Refuses new work and waits for queued writes to commit. */
  async close(): Promise<void> {
    this.#closing = true
    if (this.#running || !this.#queues.empty) {
      this.#idle ??= Promise.withResolvers()
      await this.#idle.promise
    }
    this.#open = false
  }

  enqueue(input: JobInput): Promise<JobResult> {
    if (!this.#open || this.#closing) return Promise.reject(new UnavailableError('SHUTTING_DOWN', 'the store is closing'))
    const { promise, resolve, reject } = Promise.withResolvers<JobResult>()
    if (!this.#queues.push({ ...input, resolve, reject } as Job)) {
      return Promise.reject(new UnavailableError('OVERLOADED', 'too many writes are waiting; retry later'))
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
        if (this.#queues.empty) {
          if (writing === undefined) break
          // Wait for the batch being written, or for new jobs to apply meanwhile.
          this.#wake = Promise.withResolvers()
          await Promise.race([writing.done, this.#wake.promise])
          this.#wake = undefined
          continue
        }
        const first = this.#queues.head()
        if (first?.kind === 'wipe' || first?.kind === 'purge' || first?.kind === 'index') {
          await drain()
          this.#queues.dropHead(first)
          if (first.kind === 'wipe') await this.#commitWipe(first)
          else if (first.kind === 'purge') await this.#commitPurge(first)
          else await this.#commitIndex(first)
          this.#tip = this.#publishedState()
          continue
        }
        const group = this.#queues.takeGroup()
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

  /** The node state readers see: that of the last durable batch. */
  #publishedState(): NodeState {
    return { nodeVv: this.#nodeVv, feedSeq: this.#feedSeq, logFloor: this.#logFloor, counts: this.#counts }
  }

  /**
   * Forgets the in-memory edits of groups that will not be written: their documents leave the
   * cache, and the Yjs clientID changes, since the clocks those edits used are now unused.
   */
  #discardEdits(working: ReadonlyMap<string, WorkingEntity>): void {
    for (const key of working.keys()) this.#docs.discard(key)
    this.#rotateClientId()
  }

  /** Forgets a group's edits and puts its jobs back, to be applied again from the durable state. */
  #redo(working: ReadonlyMap<string, WorkingEntity>, jobs: readonly Job[]): void {
    this.#discardEdits(working)
    this.#queues.requeue(jobs)
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
      await loadGroup({ kv: this.#kv, docs: this.#docs, clientId: () => this.#clientId }, group, g.working)
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
    const ops = write ? groupBatchOps(g, counts, this.#deltaLimits, this.#clientIdsDirty ? this.#clientIds : undefined, this.#indexesOf) : undefined
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
      this.#docs.groupEnded(g.working.keys())
    }
    for (const { job, result, error } of outcomes) {
      if (error !== undefined) job.reject(error)
      else job.resolve(result as JobResult)
    }
    if (ops === undefined) return
    try {
      if (this.#events.listenerCount('feed') > 0) this.#events.emit('feed', feedBatchOf(g, p.feedFrom))
      if (g.committed.length > 0) {
        this.#events.emit('commit', g.committed)
        for (const c of g.committed) this.#events.emit('change', c)
      }
      // Last: the replicator's listeners above must not depend on a metrics listener.
      if (timing !== undefined) this.#events.emit('durable', timing)
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
      const from = this.#feedSeq
      const plan = await planWipe(this.#kv, job.ns, { counts: this.#counts, feedSeq: this.#feedSeq })
      for (const key of plan.removedKeys) this.#docs.delete(key)
      await this.#commitBatch(plan.ops, () => {
        this.#counts = plan.counts
        this.#feedSeq = plan.feedSeq
      })
      this.#announceRemoval(from, plan.feedSeq, [job.ns])
      // An entity written again after the wipe starts a new Y.Doc whose clock restarts at 0: with
      // the same clientID its items would collide with those of its earlier life (still held by
      // peers and backups). A fresh clientID keeps every (client, clock) pair unique.
      this.#rotateClientId()
      job.resolve({ views: plan.removed })
    } catch (error) {
      this.#log.error({ err: error, ns: job.ns }, 'wiping a namespace failed')
      job.reject(error)
    } finally {
      this.#docs.allEnded()
    }
  }

  async #commitPurge(job: Job & { kind: 'purge' }): Promise<void> {
    try {
      const from = this.#feedSeq
      const plan = await planPurge(this.#kv, job, { horizon: this.#horizon, feedFloor: this.#feedFloor, feedSeq: this.#feedSeq })
      for (const key of plan.purgedKeys) this.#docs.delete(key)
      if (plan.ops !== undefined) {
        await this.#commitBatch(plan.ops, () => {
          this.#horizon = plan.horizon
          this.#feedFloor = plan.feedFloor
          this.#feedSeq = plan.feedSeq
        })
        if (plan.feedSeq > from) this.#announceRemoval(from, plan.feedSeq, [...new Set(plan.purged.map((v) => v.ns))])
        this.gcStats.purged += plan.purged.length
      }
      job.resolve({ views: plan.purged })
    } catch (error) {
      this.#log.error({ err: error }, 'purging tombstones failed')
      job.reject(error)
    } finally {
      this.#docs.allEnded()
    }
  }

  /** Tells feed readers (live queries, the change feed) that entities of `removed` went without entries. */
  #announceRemoval(from: number, to: number, removed: readonly string[]): void {
    try {
      if (this.#events.listenerCount('feed') > 0) this.#events.emit('feed', { from, to, entries: [], removed })
    } catch (error) {
      this.#log.error({ err: error }, 'a feed listener failed')
    }
  }

  async #commitIndex(job: Job & { kind: 'index' }): Promise<void> {
    try {
      const plan = await planIndexJob(this.#kv, this.#indexes, job.action)
      if (plan.ops !== undefined) {
        await this.#commitBatch(plan.ops, () => {
          this.#indexes = plan.catalog
          this.#indexLists.clear()
        })
      }
      job.resolve({ views: [], index: plan.outcome })
    } catch (error) {
      if (!(error instanceof MeshsyncError)) this.#log.error({ err: error }, 'an index job failed')
      job.reject(error)
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
}
