import type { Stream } from '@libp2p/interface'
import type { Logger } from 'pino'
import {
  counterOf,
  dominates,
  merge,
  type ChangeRecord,
  type Dot,
  type EntitySnapshot,
  type VersionVector,
} from '../../crdt/index.ts'
import {
  requestNamespace,
  runSyncSession,
  serveNamespace,
  SyncProtocolError,
  type GcHello,
  type HelloFrame,
  type InboundGossip,
  type InvalidInput,
  nodeIdOfPeerId,
  type OutgoingBatch,
  type RelayStats,
  type ReplicationTransport,
  type SyncPeer,
  type SyncSource,
} from '../../transport/index.ts'
import { failpoints, shouldDropRemote } from '../failpoints.ts'
import type { CommittedChange, EntityStore, GcStats } from '../store/entity-store.ts'
import { AntiEntropyDue } from './anti-entropy-due.ts'
import { DEFAULT_GOSSIP_PACE_MAX_MS, DEFAULT_GOSSIP_PACE_MS, GossipPace } from './gossip-pace.ts'
import { PendingChanges } from './pending-changes.ts'
import { behindBy, redialDelayMs, type PeerBook, type PeerView } from './peer-book.ts'
import { ResyncError } from './namespace-resync.ts'
import { encodeStoredEntity, GcHorizonError } from './sync-source.ts'
import { staleNamespaces, TombstoneCollector, type StaleNamespace } from './tombstone-gc.ts'

export { DEFAULT_GOSSIP_PACE_MAX_MS, DEFAULT_GOSSIP_PACE_MS } from './gossip-pace.ts'
export { ResyncError } from './namespace-resync.ts'
export { GcHorizonError } from './sync-source.ts'

/** Wait before a failed sync session that was asked for again meanwhile is retried. */
const SYNC_RETRY_MS = 1000
/** How often remembered, disconnected peers whose backoff ran out are dialed. */
const REDIAL_TICK_MS = 500
/** Longest a redial (of a remembered peer or a seed address) may take. */
const DIAL_TIMEOUT_MS = 5000
/** Wait after a peer's heads before pulling what is still missing (the origin's own gossip is given this long). */
const HEADS_GRACE_MS = 300
/** Most remote changes handed to the store in one call (a few group commits). */
const MAX_APPLY_BATCH = 4000

/** Most bytes of entity state one resync holds in memory before it replaces the namespace. */
const MAX_RESYNC_BYTES = 512 * 1024 * 1024
/** Tunables of replication. */
export interface ReplicatorOptions {
  /** Mean period of anti-entropy with each connected peer (jittered ±25%). */
  readonly antiEntropyIntervalMs?: number
  /** Idle timeout of a sync stream. */
  readonly streamTimeoutMs?: number
  /** Bound of the out-of-order buffer. */
  readonly maxPendingChanges?: number
  /** Invalid messages from one peer before it is disconnected. */
  readonly maxStrikes?: number
  /** How long a peer that hit maxStrikes stays refused. */
  readonly banMs?: number
  /** Missing records above which (and above twice the entity count) a peer gets a snapshot. */
  readonly snapshotThreshold?: number
  /** Period of the tombstone GC sweep (0: never on a timer). */
  readonly gcIntervalMs?: number
  /** Clock difference between nodes the tombstone GC allows for. */
  readonly gcClockSkewMs?: number
  /**
   * Least time between two gossip publishes: commits meanwhile share one message (0: one per
   * commit). Under a sustained write load the spacing grows up to `gossipPaceMaxMs`
   * (gossip-pace.ts).
   */
  readonly gossipPaceMs?: number
  /** Most time between two gossip publishes under a sustained write load. */
  readonly gossipPaceMaxMs?: number
  /**
   * Addresses of peers whose id is not known yet (bootstrap addresses without `/p2p/<id>`):
   * dialed until each has answered once, backing off like a remembered peer; the peer book
   * remembers the peer from then on.
   */
  readonly seedAddrs?: readonly string[]
}

/** Replication counters (also exported as metrics). */
export interface ReplicationStats {
  gossipIn: number
  gossipOut: number
  gossipDuplicates: number
  sessions: number
  sessionFailures: number
  recordsIn: number
  recordsOut: number
  bytesIn: number
  bytesOut: number
  invalidInputs: number
  pendingDropped: number
  snapshotEntitiesIn: number
  snapshotEntitiesOut: number
  /** Connected peers a local commit's gossip did not reach (each is synced at once instead). */
  gossipUnreached: number
  /** Sessions that brought news no other path had, passed on to the other peers at once. */
  relayedSessions: number
  /** Heads a peer told of gossip it withheld that were still missing here after a grace period (pulled from it). */
  headsBehind: number
  /** Periodic sessions not started because a session with the peer (either side's) succeeded less than half a period before. */
  periodicSkipped: number
  /** Sessions refused because one side lacked the other's tombstone purges. */
  gcHorizonRefusals: number
  /** Namespaces reloaded from a peer because this node lacked its purges. */
  gcRebootstraps: number
}

export interface ReplicatorComponents {
  readonly store: EntityStore
  readonly transport: ReplicationTransport
  readonly peers: PeerBook
  readonly logger: Logger
}

/**
 * Joins the store and the transport. Local commits go out on gossip at once (fast path); remote
 * changes from gossip and from sync sessions go through one ingest path into the store, in causal
 * order; anti-entropy sessions run on connect, periodically and whenever a gap is seen, and repair
 * exactly what differs (per-origin logs compared by version vectors).
 */
export class Replicator implements SyncSource {
  readonly nodeId: string
  readonly stats: ReplicationStats = {
    gossipIn: 0,
    gossipOut: 0,
    gossipDuplicates: 0,
    sessions: 0,
    sessionFailures: 0,
    recordsIn: 0,
    recordsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    invalidInputs: 0,
    pendingDropped: 0,
    snapshotEntitiesIn: 0,
    snapshotEntitiesOut: 0,
    gossipUnreached: 0,
    relayedSessions: 0,
    periodicSkipped: 0,
    headsBehind: 0,
    gcHorizonRefusals: 0,
    gcRebootstraps: 0,
  }
  /** Tombstone GC: acks of every member, and the sweep. */
  readonly gc: TombstoneCollector
  readonly #store: EntityStore
  readonly #transport: ReplicationTransport
  readonly #peers: PeerBook
  readonly #log: Logger
  readonly #pending: PendingChanges
  readonly #interval: number
  readonly #streamTimeout: number
  readonly #maxStrikes: number
  readonly #banMs: number
  readonly #snapshotThreshold: number
  readonly #gcInterval: number
  #gcTimer: NodeJS.Timeout | undefined
  #sweeping: Promise<number> | undefined
  /** Namespaces being reloaded because a peer purged tombstones this node still spreads. */
  readonly #rebootstrapping = new Set<string>()
  /** Per origin, the highest seq handed to ingestion by any path (applied or about to be). */
  readonly #seen: Record<string, number> = {}
  /** Per peer, changes its current session brought that no other path had delivered. */
  readonly #novelFrom = new Map<string, number>()
  /** The rounds over the pending buffer in progress (one at a time: rounds never interleave). */
  #draining: Promise<void> | undefined
  /** Changes were handed over since the running round last looked. */
  #ingestMore = false
  /** Rounds of ingestion started so far, and the callers waiting for a round to end. */
  #roundsStarted = 0
  readonly #roundWaiters = new Map<number, PromiseWithResolvers<void>>()
  /** Outbound sessions per peer (one at a time; a request meanwhile reruns it once after). */
  readonly #sessions = new Map<string, { rerun: boolean }>()
  /** Inbound sessions per peer, and peers whose outbound session waits for them to end. */
  readonly #inbound = new Map<string, number>()
  readonly #afterInbound = new Set<string>()
  readonly #gapTimers = new Map<string, NodeJS.Timeout>()
  /** Peers being dialed by {@link #redial}: a connect makes every other peer due at once, and a burst of connects would dial each again. */
  readonly #dialing = new Set<string>()
  #timer: NodeJS.Timeout | undefined
  readonly #antiEntropyDue: AntiEntropyDue
  #redialTimer: NodeJS.Timeout | undefined
  /** Seed addresses not answered yet, with when each is due and how many dials failed. */
  readonly #seeds = new Map<string, { due: number; failures: number; dialing: boolean }>()
  #controller = new AbortController()
  #running = false
  /** Local changes committed and not yet published. */
  #outbox: CommittedChange[] = []
  /** Cancels the publish scheduled for the outbox (undefined: none scheduled). */
  #cancelPublish: (() => void) | undefined
  readonly #pace: GossipPace
  readonly #onCommit = (committed: readonly CommittedChange[]): void => {
    const local = committed.filter((c) => !c.remote)
    if (local.length === 0) return
    this.stats.gossipOut += local.length
    this.#outbox.push(...local)
    const now = performance.now()
    this.#pace.committed(local.length, now)
    if (this.#cancelPublish !== undefined) return
    // Paced (gossip-pace.ts): a commit after a quiet spell goes out at once (on the next turn of
    // the event loop, so that the writers' replies, already resolved, are written first rather
    // than behind the publish's encoding and encryption); under a write load the commits of the
    // spacing share one message, so every peer handles one message for many changes instead of
    // one per commit.
    const wait = this.#pace.waitMs(now)
    if (wait <= 0) {
      const immediate = setImmediate(() => this.#publishOutbox())
      this.#cancelPublish = () => clearImmediate(immediate)
    } else {
      const timer = setTimeout(() => this.#publishOutbox(), wait)
      this.#cancelPublish = () => clearTimeout(timer)
    }
  }
  #publishOutbox(): void {
    this.#cancelPublish = undefined
    this.#pace.published(performance.now())
    const changes = this.#outbox
    this.#outbox = []
    if (changes.length === 0) return
    void this.#transport.publishChanges(changes).then(({ recipients, bytesTo }) => {
      for (const [peerId, bytes] of bytesTo) this.#peers.gossiped(peerId, 0, bytes)
      // Gossip is best-effort; a connected peer it did not reach gets the change by anti-entropy
      // now rather than at the next period.
      const reached = new Set(recipients)
      for (const peerId of this.#transport.connectedPeers()) {
        if (reached.has(peerId)) continue
        this.stats.gossipUnreached++
        this.#syncSoon(peerId)
      }
    })
  }
  readonly #onSubscribed = (peerId: string): void => this.#syncIfInitiator(peerId)
  readonly #onGossip = (g: InboundGossip): void => void this.#handleGossip(g)
  readonly #onInvalid = (i: InvalidInput): void => this.#strike(i.peerId, i.surface, i.reason)
  /**
   * A peer withheld gossip because its origin reaches this node directly. When this node has not
   * seen those changes, it gives the origin's own message a moment, then pulls what is still
   * missing from that peer (the origin's link may be dead without anyone knowing yet).
   */
  readonly #onHeads = ({ via, heads }: { via: string; heads: readonly Dot[] }): void => {
    if (!heads.some((d) => d.seq > counterOf(this.#seen, d.origin))) return
    setTimeout(() => {
      const vv = this.#store.versionVector
      if (!heads.some((d) => d.seq > counterOf(vv, d.origin))) return
      this.stats.headsBehind++
      this.#syncSoon(via)
    }, HEADS_GRACE_MS).unref()
  }
  readonly #onConnect = (peerId: string): void => {
    this.#log.debug({ peerId }, 'peer connected')
    this.#peers.connected(peerId)
    this.#syncIfInitiator(peerId)
    // A peer came (back): the partition or link that kept the others away may have healed too.
    // Dial them now rather than when their backoff runs out.
    this.#peers.dialAllSoon()
    if (this.#running) this.#redial()
  }
  readonly #onDisconnect = (peerId: string): void => {
    this.#log.debug({ peerId }, 'peer disconnected')
    this.#peers.disconnected(peerId)
  }

  constructor(components: ReplicatorComponents, options: ReplicatorOptions = {}) {
    this.#store = components.store
    this.#transport = components.transport
    this.#peers = components.peers
    this.#log = components.logger
    this.nodeId = components.store.nodeId
    this.#pending = new PendingChanges(options.maxPendingChanges ?? 200_000)
    this.#interval = options.antiEntropyIntervalMs ?? 10_000
    this.#antiEntropyDue = new AntiEntropyDue(this.#interval)
    this.#streamTimeout = options.streamTimeoutMs ?? 30_000
    this.#maxStrikes = options.maxStrikes ?? 10
    this.#banMs = options.banMs ?? 10 * 60_000
    this.#snapshotThreshold = options.snapshotThreshold ?? 1000
    this.#gcInterval = options.gcIntervalMs ?? 60_000
    this.#pace = new GossipPace(options.gossipPaceMs ?? DEFAULT_GOSSIP_PACE_MS, options.gossipPaceMaxMs ?? DEFAULT_GOSSIP_PACE_MAX_MS)
    for (const addr of options.seedAddrs ?? []) this.#seeds.set(addr, { due: 0, failures: 0, dialing: false })
    this.gc = new TombstoneCollector(
      this.#store,
      () => this.#peers.views(this.#store.versionVector).flatMap((p) => (p.nodeId ? [p.nodeId] : [])),
      this.#log.child({ component: 'tombstone-gc' }),
      options.gcClockSkewMs !== undefined ? { clockSkewMs: options.gcClockSkewMs } : {},
    )
  }

  /** Wires events and starts the anti-entropy timer. Idempotent. */
  start(): void {
    if (this.#running) return
    this.#running = true
    this.#controller = new AbortController()
    this.#store.on('commit', this.#onCommit)
    this.#transport.on('gossip', this.#onGossip)
    this.#transport.on('heads', this.#onHeads)
    this.#transport.on('invalid', this.#onInvalid)
    this.#transport.on('peer:connect', this.#onConnect)
    this.#transport.on('peer:disconnect', this.#onDisconnect)
    this.#transport.on('peer:subscribed', this.#onSubscribed)
    this.#transport.handleSync((stream, peer) => this.#serve(stream, peer))
    this.#transport.handleResync((stream, peer) => this.#serveResync(stream, peer.peerId))
    for (const peerId of this.#transport.connectedPeers()) this.#onConnect(peerId)
    this.#scheduleAntiEntropy()
    this.#redialTimer = setInterval(() => this.#redial(), REDIAL_TICK_MS)
    this.#redialTimer.unref()
    if (this.#gcInterval > 0) {
      this.#gcTimer = setInterval(() => void this.collectTombstones().catch(() => undefined), this.#gcInterval)
      this.#gcTimer.unref()
    }
  }

  /** Runs one tombstone GC sweep now (one at a time); resolves with the number purged. */
  collectTombstones(): Promise<number> {
    this.#sweeping ??= this.gc
      .sweep({ signal: this.#controller.signal })
      .catch((error: unknown) => {
        if (this.#running) this.#log.warn({ err: error }, 'tombstone GC sweep failed')
        return 0
      })
      .finally(() => {
        this.#sweeping = undefined
      })
    return this.#sweeping
  }

  /** Stops timers and sessions; waits for in-flight ingestion. Idempotent. */
  async stop(): Promise<void> {
    if (!this.#running) return
    this.#running = false
    clearTimeout(this.#timer)
    // Changes not yet published reach peers by anti-entropy.
    this.#cancelPublish?.()
    this.#cancelPublish = undefined
    this.#outbox = []
    clearInterval(this.#redialTimer)
    clearInterval(this.#gcTimer)
    for (const t of this.#gapTimers.values()) clearTimeout(t)
    this.#gapTimers.clear()
    this.#controller.abort(new Error('replicator stopping'))
    this.#store.off('commit', this.#onCommit)
    this.#transport.off('gossip', this.#onGossip)
    this.#transport.off('heads', this.#onHeads)
    this.#transport.off('invalid', this.#onInvalid)
    this.#transport.off('peer:connect', this.#onConnect)
    this.#transport.off('peer:disconnect', this.#onDisconnect)
    this.#transport.off('peer:subscribed', this.#onSubscribed)
    await this.#draining?.catch(() => undefined)
    await this.#sweeping
  }

  /** Peers and how far behind each is, as the API shows them. */
  peerViews(): PeerView[] {
    return this.#peers.views(this.#store.versionVector)
  }

  /** Tombstone GC counters of the store (purges, stale changes, new incarnations). */
  get gcStats(): Readonly<GcStats> {
    return this.#store.gcStats
  }

  /** The transport's forwarding decisions on received gossip. */
  get relayStats(): Readonly<RelayStats> {
    return this.#transport.relayStats
  }

  /** Changes held until their predecessors arrive. */
  get pendingCount(): number {
    return this.#pending.size
  }

  /** The least time between two gossip publishes now, in ms (it grows with the local change rate). */
  get gossipSpacingMs(): number {
    return this.#pace.spacingMs(performance.now())
  }

  /** True while any anti-entropy session runs. */
  get syncing(): boolean {
    return this.#sessions.size > 0
  }

  // ---- SyncSource --------------------------------------------------------------------------

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

  gcHello(): GcHello {
    return this.gc.hello()
  }

  acceptHello(hello: HelloFrame, peer: SyncPeer): void {
    this.gc.fromHello(peer.nodeId, hello.vv, hello.gc)
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
          await this.resyncNamespace(ns, { from: peerId })
          await this.#store.adoptPurgeHorizon(ns, horizon)
          this.stats.gcRebootstraps++
        }
        this.syncWith(peerId)
      } catch (error) {
        this.#log.warn({ err: error, peerId }, 'reloading namespaces after tombstone purges failed; retried at the next session')
      } finally {
        for (const s of todo) this.#rebootstrapping.delete(s.ns)
      }
    })()
  }

  async receiveChanges(changes: readonly ChangeRecord[], peer: SyncPeer): Promise<void> {
    this.stats.recordsIn += changes.length
    // What no other path (gossip, another session) had handed over yet: news to relay.
    const novel = changes.filter((c) => c.seq > counterOf(this.#seen, c.origin)).length
    if (novel > 0) this.#novelFrom.set(peer.peerId, (this.#novelFrom.get(peer.peerId) ?? 0) + novel)
    await this.ingest(changes)
  }

  async receiveSnapshot(entities: readonly EntitySnapshot[], peer: SyncPeer): Promise<void> {
    this.stats.snapshotEntitiesIn += entities.length
    const result = await this.#store.applySnapshot(entities)
    if (result.merged > 0) this.#novelFrom.set(peer.peerId, (this.#novelFrom.get(peer.peerId) ?? 0) + result.merged)
    if (result.invalid > 0) this.stats.invalidInputs += result.invalid
  }

  async completeSnapshot(vv: VersionVector): Promise<void> {
    await this.#store.completeSnapshot(vv)
    // Changes held for predecessors the snapshot brought can apply now (or are covered).
    await this.ingest([])
  }

  // ---- ingestion -----------------------------------------------------------------------------

  /**
   * The one path every remote change takes: buffer, then apply everything deliverable in causal
   * order, round after round, until nothing more applies. Changes that arrive while a round is
   * being committed are taken by the next round (one group commit for all of them) rather than
   * each waiting for its own. The promise resolves once a round that began after the changes were
   * handed over is done (they are applied, or wait for predecessors), however long the rounds go
   * on after it.
   */
  ingest(changes: readonly ChangeRecord[]): Promise<void> {
    for (const c of changes) if (c.seq > counterOf(this.#seen, c.origin)) this.#seen[c.origin] = c.seq
    this.stats.pendingDropped += this.#pending.add(failpoints.dropRemoteOneIn > 0 ? changes.map(blankSometimes) : changes, this.#store.versionVector)
    this.#ingestMore = true
    const round = this.#roundsStarted + 1
    let done = this.#roundWaiters.get(round)
    if (done === undefined) {
      done = Promise.withResolvers<void>()
      this.#roundWaiters.set(round, done)
    }
    this.#draining ??= this.#drain()
    return done.promise
  }

  async #drain(): Promise<void> {
    try {
      // Yield once, so that the changes handed over in this same turn share the first round.
      await Promise.resolve()
      for (;;) {
        this.#ingestMore = false
        const round = ++this.#roundsStarted
        // Only what can apply now goes to the store (the whole causal closure of the buffer, up to
        // a bound): changes waiting for predecessors cost nothing per round, however many.
        const ready = this.#pending.deliverable(this.#store.versionVector, MAX_APPLY_BATCH)
        let applied = 0
        if (ready.length > 0) {
          const result = await this.#store.applyRemote(ready)
          this.#pending.prune(this.#store.versionVector)
          for (const bad of result.invalid) {
            this.#log.warn({ origin: bad.origin, seq: bad.seq }, 'change with a malformed Yjs update refused')
          }
          if (result.invalid.length > 0) this.#dropInvalid(result.invalid)
          applied = result.applied + result.invalid.length
        }
        // A round under the bound took everything deliverable when it began: whoever handed changes
        // over before that has them applied or waiting for predecessors.
        if (ready.length < MAX_APPLY_BATCH || applied === 0) {
          for (const [r, waiter] of this.#roundWaiters) {
            if (r > round) continue
            waiter.resolve()
            this.#roundWaiters.delete(r)
          }
        }
        // Go on while rounds make progress, or while changes came in meanwhile.
        if (applied === 0 && !this.#ingestMore) break
      }
    } catch (error) {
      // What is still buffered is tried again by the next ingest.
      this.#log.error({ err: error }, 'applying remote changes failed')
      for (const waiter of this.#roundWaiters.values()) waiter.reject(error)
      this.#roundWaiters.clear()
    } finally {
      // Synchronously after the last check of #ingestMore: an ingest from here on starts a new round.
      this.#draining = undefined
    }
  }

  #dropInvalid(invalid: readonly ChangeRecord[]): void {
    // A malformed change can never apply; keeping it would block its origin forever here, and
    // the honest copy (if any) comes again by anti-entropy from another peer.
    this.stats.invalidInputs += invalid.length
    this.#pending.remove(invalid)
    this.#pending.prune(this.#store.versionVector)
  }

  async #handleGossip(g: InboundGossip): Promise<void> {
    this.#peers.gossiped(g.via, g.bytes, 0)
    if (g.kind === 'announce') {
      this.stats.gossipIn++
      if (g.dot.seq > counterOf(this.#store.versionVector, g.dot.origin)) this.#syncSoon(g.via)
      else this.stats.gossipDuplicates++
      return
    }
    this.stats.gossipIn += g.changes.length
    const vv = this.#store.versionVector
    const fresh = g.changes.filter((c) => c.seq > counterOf(vv, c.origin))
    this.stats.gossipDuplicates += g.changes.length - fresh.length
    if (fresh.length === 0) return
    await this.ingest(fresh).catch(() => undefined)
    // Still not applied: predecessors are missing. Pull them from the peer that sent the message:
    // its connection just worked, and it held the changes to relay them. The origin may be
    // connected on paper only (a partition both sides have not noticed yet), and a session with it
    // would wait out its stream timeout.
    const after = this.#store.versionVector
    if (fresh.some((c) => counterOf(after, c.origin) < c.seq)) this.#syncSoon(g.via)
  }

  /**
   * Sync with `peerId` shortly (debounced, so a burst makes one session): a gap was seen, or
   * gossip did not reach the peer.
   */
  #syncSoon(peerId: string): void {
    if (this.#gapTimers.has(peerId) || !this.#running) return
    this.#gapTimers.set(
      peerId,
      setTimeout(() => {
        this.#gapTimers.delete(peerId)
        this.syncWith(peerId)
      }, 100),
    )
  }

  // ---- sessions ------------------------------------------------------------------------------

  /** Runs an anti-entropy session with a connected peer (one at a time per peer). */
  syncWith(peerId: string): void {
    if (!this.#running) return
    const running = this.#sessions.get(peerId)
    if (running) {
      running.rerun = true
      return
    }
    if ((this.#inbound.get(peerId) ?? 0) > 0) {
      // The peer is syncing with us right now; ours runs after, and is then nearly free.
      this.#afterInbound.add(peerId)
      return
    }
    const state = { rerun: false }
    this.#sessions.set(peerId, state)
    void (async () => {
      try {
        do {
          state.rerun = false
          const stream = await this.#transport.openSyncStream(peerId, { signal: AbortSignal.any([this.#controller.signal, AbortSignal.timeout(10_000)]) })
          await this.#session(stream, peerId)
        } while (state.rerun && this.#running)
      } catch (error) {
        this.#sessionFailed(peerId, error)
        // Syncs asked for while this one was failing would be lost: try again while connected.
        if (state.rerun && this.#transport.connectedPeers().includes(peerId)) setTimeout(() => this.#syncSoon(peerId), SYNC_RETRY_MS).unref()
      } finally {
        this.#sessions.delete(peerId)
      }
    })()
  }

  /** Resolves when no session is running and nothing is being ingested (for tests and shutdown). */
  async idle(): Promise<void> {
    while (this.#sessions.size > 0 || this.#inbound.size > 0 || this.#gapTimers.size > 0) await new Promise((r) => setTimeout(r, 20))
    await this.#draining?.catch(() => undefined)
  }

  async #serve(stream: Stream, peer: { peerId: string; nodeId: string }): Promise<void> {
    this.#inbound.set(peer.peerId, (this.#inbound.get(peer.peerId) ?? 0) + 1)
    try {
      await this.#session(stream, peer.peerId)
    } catch (error) {
      this.#sessionFailed(peer.peerId, error)
    } finally {
      const left = (this.#inbound.get(peer.peerId) ?? 1) - 1
      if (left > 0) this.#inbound.set(peer.peerId, left)
      else this.#inbound.delete(peer.peerId)
      if (left === 0 && this.#afterInbound.delete(peer.peerId)) this.syncWith(peer.peerId)
    }
  }

  /**
   * Full refresh of a namespace from a peer (the read-only full pattern): fetches every entity of
   * `ns` from `from` (or the first connected peer), then replaces the local namespace with it in
   * place. Everything is fetched before anything local is touched, so a failed transfer changes
   * nothing. Local changes of `ns` that the peer does not have are dropped from this node's
   * entities (they stay in its log and on any peer that has them).
   */
  async resyncNamespace(ns: string, options: { from?: string; signal?: AbortSignal } = {}): Promise<{ from: string; entities: number; removed: number }> {
    const from = options.from ?? this.#transport.connectedPeers()[0]
    if (from === undefined) throw new ResyncError('NO_PEER', 'no connected peer to resync from')
    if (!this.#transport.connectedPeers().includes(from)) throw new ResyncError('NO_PEER', `peer ${from} is not connected`)
    const fetched: EntitySnapshot[] = []
    let bytes = 0
    const stream = await this.#transport.openResyncStream(from, options.signal ? { signal: options.signal } : {})
    const result = await requestNamespace(
      stream,
      ns,
      async (batch) => {
        for (const e of batch) bytes += e.state.length
        if (bytes > MAX_RESYNC_BYTES) throw new ResyncError('RESYNC_TOO_LARGE', `namespace ${ns} is larger than ${MAX_RESYNC_BYTES} bytes of state`)
        fetched.push(...batch)
      },
      { signal: AbortSignal.any([this.#controller.signal, ...(options.signal ? [options.signal] : [])]), idleTimeoutMs: this.#streamTimeout },
    )
    if (result.invalid > 0) this.#strike(from, 'resync', `${result.invalid} malformed entity snapshots`)
    const removed = await this.#store.wipeNamespace(ns)
    for (let i = 0; i < fetched.length; i += 500) await this.#store.applySnapshot(fetched.slice(i, i + 500))
    this.#log.info({ ns, from, entities: fetched.length, removed }, 'namespace reloaded from peer')
    return { from, entities: fetched.length, removed }
  }

  async #serveResync(stream: Stream, peerId: string): Promise<void> {
    const store = this.#store
    try {
      await serveNamespace(
        stream,
        async function* (ns) {
          for await (const e of store.entities({ ns })) {
            yield encodeStoredEntity(e)
          }
        },
        { signal: this.#controller.signal, idleTimeoutMs: this.#streamTimeout },
      )
    } catch (error) {
      this.#sessionFailed(peerId, error)
    }
  }

  /**
   * On connect (and when a peer joins the topic) both sides would start a session at the same
   * moment and send the same records twice; the side with the smaller peer id starts it.
   */
  #syncIfInitiator(peerId: string): void {
    if (this.#transport.peerId.toString() < peerId) this.syncWith(peerId)
  }

  async #session(stream: Stream, peerId: string): Promise<void> {
    this.#novelFrom.delete(peerId)
    const started = performance.now()
    const result = await runSyncSession(stream, this, {
      expectedNodeId: nodeIdOfPeerId(peerId),
      remotePeerId: peerId,
      signal: this.#controller.signal,
      idleTimeoutMs: this.#streamTimeout,
    })
    this.stats.sessions++
    this.#antiEntropyDue.synced(peerId, started)
    this.#log.debug({ peerId, ms: Math.round(performance.now() - started), bytesIn: result.bytesIn, bytesOut: result.bytesOut }, 'sync session done')
    this.stats.bytesIn += result.bytesIn
    this.stats.bytesOut += result.bytesOut
    if (result.invalidRecords > 0) this.#strike(peerId, 'sync', `${result.invalidRecords} malformed change records`)
    this.#peers.synced(peerId, result.peer.nodeId, result.theirVv, result.bytesIn, result.bytesOut)
    this.gc.observe(result.peer.nodeId, result.theirVv)
    // Only a change's origin gossips it, so what this session brought (e.g. writes the peer made
    // before it joined) would reach the other peers only at their next anti-entropy period.
    // Pass it on now (multi-hop); this stops once a session brings nothing new. "New" is what no
    // other path had delivered: counting the vector's growth instead (gossip lands during every
    // session under steady writes) made each session start more, a storm of sessions.
    const novel = this.#novelFrom.get(peerId) ?? 0
    this.#novelFrom.delete(peerId)
    if (novel > 0) {
      this.stats.relayedSessions++
      for (const other of this.#transport.connectedPeers()) if (other !== peerId) this.#syncSoon(other)
    }
    for (const addr of await this.#transport.dialableAddrs(peerId)) this.#peers.remember(peerId, addr)
  }

  #sessionFailed(peerId: string, error: unknown): void {
    if (!this.#running) return
    this.stats.sessionFailures++
    if (error instanceof GcHorizonError) this.#log.debug({ peerId, err: error }, 'sync session refused: tombstone purges differ')
    else if (error instanceof SyncProtocolError) this.#strike(peerId, 'sync', error.message)
    else this.#log.debug({ peerId, err: error }, 'sync session failed')
  }

  /** Counts a bad input against a peer; a repeat offender is disconnected and refused a while. */
  #strike(peerId: string, surface: string, reason: string): void {
    this.stats.invalidInputs++
    const strikes = this.#peers.strike(peerId)
    this.#log.warn({ peerId, surface, reason, strikes }, 'invalid input from peer dropped')
    if (strikes >= this.#maxStrikes) {
      this.#peers.ban(peerId, Date.now() + this.#banMs)
      this.#log.warn({ peerId }, 'peer disconnected: too many invalid messages')
      void this.#transport.hangUp(peerId)
    }
  }

  /** Dials remembered peers that are not connected, with exponential backoff per peer, and the seed addresses not answered yet. */
  #redial(): void {
    this.#dialSeeds()
    const connected = new Set(this.#transport.connectedPeers())
    for (const { peerId, addrs } of this.#peers.dueForDial()) {
      if (connected.has(peerId) || this.#dialing.has(peerId)) continue
      this.#peers.dialFailed(peerId) // pushes the next attempt out now; a success resets it
      this.#dialing.add(peerId)
      void (async () => {
        try {
          for (const addr of addrs) {
            try {
              await this.#transport.dial(addr, { signal: this.#dialSignal() })
              return
            } catch {
              // next address
            }
          }
        } finally {
          this.#dialing.delete(peerId)
        }
      })()
    }
  }

  /** Ends a redial when the replicator stops or after 5 s. */
  #dialSignal(): AbortSignal {
    return AbortSignal.any([this.#controller.signal, AbortSignal.timeout(DIAL_TIMEOUT_MS)])
  }

  #dialSeeds(now = Date.now()): void {
    for (const [addr, seed] of this.#seeds) {
      if (seed.dialing || seed.due > now) continue
      seed.dialing = true
      void this.#transport
        .dial(addr, { signal: this.#dialSignal() })
        .then(
          (peerId) => {
            this.#seeds.delete(addr)
            this.#log.info({ addr, peerId }, 'bootstrap address answered')
          },
          (err: unknown) => {
            seed.failures++
            seed.due = Date.now() + redialDelayMs(seed.failures)
            this.#log.debug({ addr, err }, 'bootstrap address did not answer')
          },
        )
        .finally(() => (seed.dialing = false))
    }
  }

  #scheduleAntiEntropy(): void {
    if (!this.#running) return
    const delay = this.#interval * (0.75 + Math.random() * 0.5)
    this.#timer = setTimeout(() => {
      const connected = this.#transport.connectedPeers()
      // A session in progress (either side's) serves as this period's: when it succeeds it is
      // recorded, and rerunning it right after would find nothing new.
      const due = this.#antiEntropyDue.due(connected, performance.now()).filter((p) => !this.#sessions.has(p) && !this.#inbound.has(p))
      this.stats.periodicSkipped += connected.length - due.length
      for (const peerId of due) this.syncWith(peerId)
      this.#scheduleAntiEntropy()
    }, delay)
    this.#timer.unref()
  }
}

export type { SyncPeer }

/** Failpoint `drop-remote-1-in-N` (off in production): the change applies, its content is lost. */
function blankSometimes(change: ChangeRecord): ChangeRecord {
  return change.op === 'upsert' && shouldDropRemote() ? { ...change, update: new Uint8Array([0, 0]) } : change
}
