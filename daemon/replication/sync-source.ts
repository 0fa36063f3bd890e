import type { Logger } from 'pino'
import {
  counterOf,
  dominates,
  encodeEntitySnapshot,
  merge,
  MeshsyncError,
  type ChangeRecord,
  type EntitySnapshot,
  type VersionVector,
} from '../../crdt/index.ts'
import type { GcHello, HelloFrame, OutgoingBatch, SyncPeer, SyncSource } from '../../transport/index.ts'
import type { EntityStore, StoredEntity } from '../store/entity-store.ts'
import { behindBy } from './peer-book.ts'
import { staleNamespaces, type StaleNamespace, type TombstoneCollector } from './tombstone-gc.ts'

/**
 * One side of a session lacks tombstone purges the other made: the session ends before anything
 * is exchanged, and the lagging side reloads those namespaces (docs/tombstone-gc.md).
 */
export class GcHorizonError extends MeshsyncError {
  constructor(message: string) {
    super('GC_HORIZON', message)
    this.name = 'GcHorizonError'
  }
}

/** Counters of what sessions send, and of the tombstone purges they find differ (also exported as metrics). */
export interface SyncSourceStats {
  /** Change records sent by anti-entropy. */
  recordsOut: number
  /** Entity states sent by snapshot catch-up. */
  snapshotEntitiesOut: number
  /** Sessions refused because the peer lacked this node's tombstone purges. */
  gcHorizonRefusals: number
  /** Namespaces reloaded from a peer because this node lacked its purges. */
  gcRebootstraps: number
}

export interface ReplicaSyncSourceComponents {
  readonly store: EntityStore
  readonly gc: TombstoneCollector
  readonly logger: Logger
  /** Where what sessions receive goes. */
  readonly ingest: Pick<SyncSource, 'receiveChanges' | 'receiveSnapshot' | 'completeSnapshot'>
  /** Reloads a namespace from a peer (when this node lacks the peer's purges). */
  readonly resync: { resyncNamespace(ns: string, options: { from: string }): Promise<unknown> }
  /** Syncs with a peer once its namespaces are reloaded. */
  readonly sessions: { syncWith(peerId: string): void }
}

/**
 * The node's side of a sync session (docs/sync-protocol.md): its vector, what a peer lacks (history,
 * or state when history costs more or is gone), the tombstone-GC checks of HELLO, and the ingest
 * path for what the peer sends.
 */
export class ReplicaSyncSource implements SyncSource {
  readonly nodeId: string
  readonly stats: SyncSourceStats = { recordsOut: 0, snapshotEntitiesOut: 0, gcHorizonRefusals: 0, gcRebootstraps: 0 }
  readonly #store: EntityStore
  readonly #log: Logger
  readonly #ingest: ReplicaSyncSourceComponents['ingest']
  readonly #resync: ReplicaSyncSourceComponents['resync']
  readonly #sessions: ReplicaSyncSourceComponents['sessions']
  readonly #snapshotThreshold: number
  /** Tombstone GC: acks of every member, and the sweep. */
  readonly gc: TombstoneCollector
  /** Namespaces being reloaded because a peer purged tombstones this node still spreads. */
  readonly #rebootstrapping = new Set<string>()

  constructor(components: ReplicaSyncSourceComponents, options: { snapshotThreshold?: number | undefined } = {}) {
    this.#store = components.store
    this.nodeId = components.store.nodeId
    this.gc = components.gc
    this.#log = components.logger
    this.#ingest = components.ingest
    this.#resync = components.resync
    this.#sessions = components.sessions
    this.#snapshotThreshold = options.snapshotThreshold ?? 1000
  }

  versionVector(): VersionVector {
    return this.#store.versionVector
  }

  async *outgoing(theirs: VersionVector, signal: AbortSignal): AsyncIterable<OutgoingBatch> {
    let from = theirs
    if (this.#wantsSnapshot(theirs)) {
      const snapshot = await this.#store.openSnapshot()
      try {
        let batch: Uint8Array[] = []
        let size = 0
        for await (const e of snapshot.entities()) {
          signal.throwIfAborted()
          // An entity whose every change the peer has is skipped: it needs only what changed.
          if (dominates(theirs, e.meta.vv)) continue
          const bytes = encodeStoredEntity(e)
          batch.push(bytes)
          size += bytes.length
          if (batch.length >= 500 || size >= 1024 * 1024) {
            this.stats.snapshotEntitiesOut += batch.length
            yield { kind: 'snapshot', entities: batch }
            batch = []
            size = 0
          }
        }
        if (batch.length > 0) {
          this.stats.snapshotEntitiesOut += batch.length
          yield { kind: 'snapshot', entities: batch }
        }
        yield { kind: 'snapshot-end', vv: snapshot.vv }
        from = merge(theirs, snapshot.vv)
      } finally {
        await snapshot.close()
      }
    }
    const mine = this.#store.versionVector
    for (const [origin, have] of Object.entries(mine)) {
      let after = counterOf(from, origin)
      while (after < have) {
        signal.throwIfAborted()
        const batch: Uint8Array[] = []
        for await (const bytes of this.#store.changeLogBytes(origin, after, 1000)) batch.push(bytes)
        if (batch.length === 0) break
        after += batch.length
        this.stats.recordsOut += batch.length
        yield { kind: 'changes', records: batch }
      }
    }
  }

  /**
   * State instead of history when this node's log no longer holds what the peer lacks (it was
   * itself caught up by snapshot), or when the history is much longer than the state.
   */
  #wantsSnapshot(theirs: VersionVector): boolean {
    const mine = this.#store.versionVector
    const floor = this.#store.logFloor
    for (const [origin, f] of Object.entries(floor)) {
      if (counterOf(theirs, origin) < Math.min(f, counterOf(mine, origin))) return true
    }
    const missing = behindBy(mine, theirs)
    const entities = Object.values(this.#store.entityCounts).reduce((a, b) => a + b, 0)
    return missing > this.#snapshotThreshold && missing > 2 * entities
  }

  gcHello(peer: SyncPeer): GcHello {
    return this.gc.helloFor(peer)
  }

  acceptHello(hello: HelloFrame, peer: SyncPeer): void {
    this.gc.fromHello(peer.nodeId, hello.vv, hello.gc, peer.peerId)
    const theirHorizon = hello.gc?.horizon ?? {}
    const mine = staleNamespaces(theirHorizon, this.#store.versionVector, this.#store.purgeHorizon)
    if (mine.length > 0) {
      this.#rebootstrap(peer.peerId, mine)
      throw new GcHorizonError(`this node lacks tombstone purges of ${peer.nodeId} in ${mine.map((s) => s.ns).join(', ')}: reloading`)
    }
    const theirs = staleNamespaces(this.#store.purgeHorizon, hello.vv, theirHorizon)
    if (theirs.length > 0) {
      this.stats.gcHorizonRefusals++
      this.#log.warn({ peer: peer.nodeId, namespaces: theirs.map((s) => s.ns) }, 'peer lacks tombstone purges made here: session refused until it reloads')
      throw new GcHorizonError(`peer ${peer.nodeId} lacks tombstone purges in ${theirs.map((s) => s.ns).join(', ')}`)
    }
  }

  /**
   * Reloads namespaces from a peer that purged tombstones this node still holds (it was away, or
   * restored from an old copy): its entities of those namespaces become the peer's, and its
   * changes made on purged entities are stale everywhere (docs/tombstone-gc.md).
   */
  #rebootstrap(peerId: string, stale: readonly StaleNamespace[]): void {
    const todo = stale.filter((s) => !this.#rebootstrapping.has(s.ns))
    if (todo.length === 0) return
    for (const s of todo) this.#rebootstrapping.add(s.ns)
    void (async () => {
      try {
        for (const { ns, horizon } of todo) {
          this.#log.warn({ ns, from: peerId }, 'a peer purged tombstones this node still holds: reloading the namespace from it')
          await this.#resync.resyncNamespace(ns, { from: peerId })
          await this.#store.adoptPurgeHorizon(ns, horizon)
          this.stats.gcRebootstraps++
        }
        this.#sessions.syncWith(peerId)
      } catch (error) {
        this.#log.warn({ err: error, peerId }, 'reloading namespaces after tombstone purges failed; retried at the next session')
      } finally {
        for (const s of todo) this.#rebootstrapping.delete(s.ns)
      }
    })()
  }

  receiveChanges(changes: readonly ChangeRecord[], peer: SyncPeer): Promise<void> {
    return this.#ingest.receiveChanges(changes, peer)
  }

  receiveSnapshot(entities: readonly EntitySnapshot[], peer: SyncPeer): Promise<void> {
    return this.#ingest.receiveSnapshot(entities, peer)
  }

  completeSnapshot(vv: VersionVector, peer: SyncPeer): Promise<void> {
    return this.#ingest.completeSnapshot(vv, peer)
  }
}

/** An entity as stored, encoded as the entity snapshot that travels in SNAPSHOT frames. */
export function encodeStoredEntity(e: StoredEntity): Uint8Array {
  const { vv, heads, fieldHeads, updatedAt, incarnation } = e.meta
  return encodeEntitySnapshot({ ns: e.ns, id: e.id, state: e.state, vv, heads, fieldHeads, updatedAt, ...(incarnation && { incarnation }) })
}
