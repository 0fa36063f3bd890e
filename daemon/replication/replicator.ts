import type { Logger } from 'pino'
import type { ChangeRecord } from '../../crdt/index.ts'
import { nodeIdOfPeerId, type InvalidInput, type RelayStats, type ReplicationTransport, type SyncPeer } from '../../transport/index.ts'
import type { EntityStore, GcStats } from '../store/entity-store.ts'
import { Dialer } from './dialer.ts'
import { GossipOutbox, type GossipOutboxStats } from './gossip-outbox.ts'
import { Ingest, type IngestStats } from './ingest.ts'
import { NamespaceResync } from './namespace-resync.ts'
import type { PeerBook, PeerView } from './peer-book.ts'
import { PeerStrikes, type PeerStrikeStats } from './peer-strikes.ts'
import type { ReplicationRun } from './replication-run.ts'
import { SessionScheduler, type SessionStats } from './session-scheduler.ts'
import { StateDigest } from './state-digest.ts'
import { ReplicaSyncSource, type SyncSourceStats } from './sync-source.ts'
import { TombstoneCollector } from './tombstone-gc.ts'

export { DEFAULT_GOSSIP_PACE_MAX_MS, DEFAULT_GOSSIP_PACE_MS } from './gossip-pace.ts'
export { DEFAULT_ANTI_ENTROPY_FANOUT } from './session-scheduler.ts'
export { ResyncError } from './namespace-resync.ts'
export { GcHorizonError } from './sync-source.ts'
export type { SyncPeer }

/** Tunables of replication. */
export interface ReplicatorOptions {
  /** Mean period of the anti-entropy tick (jittered ±25%). */
  readonly antiEntropyIntervalMs?: number
  /** Most connected peers one anti-entropy tick syncs with (default 3, `DEFAULT_ANTI_ENTROPY_FANOUT`). */
  readonly antiEntropyFanout?: number
  /** Idle timeout of a sync stream. */
  readonly streamTimeoutMs?: number
  /** Most periods in a row a periodic session with a peer whose state digest matches is skipped (default 6). */
  readonly inSyncMaxSkippedPeriods?: number
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

/** Replication counters (also exported as metrics): those of every part, read in one place. */
export type ReplicationStats = Readonly<GossipOutboxStats & IngestStats & SessionStats & SyncSourceStats & PeerStrikeStats>

export interface ReplicatorComponents {
  readonly store: EntityStore
  readonly transport: ReplicationTransport
  readonly peers: PeerBook
  readonly logger: Logger
}

/**
 * Joins the store and the transport (docs/sync-protocol.md). Local commits go out on gossip at
 * once (fast path, {@link GossipOutbox}); remote changes from gossip and from sync sessions go
 * through one ingest path into the store, in causal order ({@link Ingest}); anti-entropy sessions
 * run on connect, periodically with a few peers at a time and whenever a gap is seen, and repair exactly what differs
 * ({@link SessionScheduler}, {@link ReplicaSyncSource}); the {@link Dialer} keeps peers connected.
 */
export class Replicator {
  readonly nodeId: string
  readonly stats: ReplicationStats
  /** Tombstone GC: acks of every member, and the sweep. */
  readonly gc: TombstoneCollector
  readonly #store: EntityStore
  readonly #transport: ReplicationTransport
  readonly #peers: PeerBook
  readonly #log: Logger
  readonly #strikes: PeerStrikes
  readonly #outbox: GossipOutbox
  readonly #ingest: Ingest
  readonly #source: ReplicaSyncSource
  readonly #sessions: SessionScheduler
  readonly #resync: NamespaceResync
  readonly #dialer: Dialer
  readonly #gcInterval: number
  #gcTimer: NodeJS.Timeout | undefined
  #sweeping: Promise<number> | undefined
  readonly #run = new RunState()
  readonly #onSubscribed = (peerId: string): void => this.#sessions.syncIfInitiator(peerId)
  readonly #onInvalid = (i: InvalidInput): void => this.#strikes.strike(i.peerId, i.surface, i.reason)
  readonly #onConnect = (peerId: string): void => {
    this.#log.debug({ peerId }, 'peer connected')
    this.#peers.connected(peerId)
    this.#sessions.syncIfInitiator(peerId)
    this.#dialer.peerConnected()
  }
  readonly #onDisconnect = (peerId: string): void => {
    this.#log.debug({ peerId }, 'peer disconnected')
    this.#peers.disconnected(peerId)
    this.gc.forgetPeer(peerId)
  }

  constructor(components: ReplicatorComponents, options: ReplicatorOptions = {}) {
    const { store, transport, peers, logger } = components
    this.#store = store
    this.#transport = transport
    this.#peers = peers
    this.#log = logger
    this.nodeId = store.nodeId
    this.#gcInterval = options.gcIntervalMs ?? 60_000
    const run = this.#run
    // The scheduler needs the sync source, whose resync reports failed streams to the scheduler:
    // the parts ask for sessions through this, which calls the scheduler once it is built.
    const sessions = {
      syncSoon: (peerId: string): void => this.#sessions.syncSoon(peerId),
      syncWith: (peerId: string): void => this.#sessions.syncWith(peerId),
      syncUnreached: (reached: ReadonlySet<string>): number => this.#sessions.syncUnreached(reached),
      sessionFailed: (peerId: string, error: unknown): void => this.#sessions.sessionFailed(peerId, error),
    }
    this.gc = new TombstoneCollector(
      store,
      // Every member counts, also one this node never connected to (the overlay connects a few).
      () => [...peers.views(store.versionVector).flatMap((p) => (p.nodeId ? [p.nodeId] : [])), ...(transport.members?.() ?? []).map((m) => nodeIdOfPeerId(m.peerId))],
      logger.child({ component: 'tombstone-gc' }),
      options.gcClockSkewMs !== undefined ? { clockSkewMs: options.gcClockSkewMs } : {},
    )
    this.#strikes = new PeerStrikes({ peers, transport, logger }, { maxStrikes: options.maxStrikes ?? 10, banMs: options.banMs ?? 10 * 60_000 })
    this.#outbox = new GossipOutbox({ store, transport, peers, sessions }, { paceMs: options.gossipPaceMs, paceMaxMs: options.gossipPaceMaxMs })
    this.#ingest = new Ingest({ store, peers, logger, sessions, strikes: this.#strikes }, { maxPendingChanges: options.maxPendingChanges })
    this.#resync = new NamespaceResync({ store, transport, logger, run, strikes: this.#strikes, sessions }, { streamTimeoutMs: options.streamTimeoutMs })
    this.#source = new ReplicaSyncSource({ store, gc: this.gc, logger, ingest: this.#ingest, resync: this.#resync, sessions }, { snapshotThreshold: options.snapshotThreshold })
    // Peers whose state digest matches this node's skip the periodic session (docs/architecture.md, Replication).
    const digest = new StateDigest(() => store.versionVector)
    const current = (): Uint8Array => digest.current()
    transport.setStateDigest?.(current)
    this.#sessions = new SessionScheduler(
      { transport, peers, logger, run, source: this.#source, ingest: this.#ingest, gc: this.gc, strikes: this.#strikes, digest: transport.setStateDigest ? current : undefined },
      {
        antiEntropyIntervalMs: options.antiEntropyIntervalMs,
        antiEntropyFanout: options.antiEntropyFanout,
        streamTimeoutMs: options.streamTimeoutMs,
        inSyncMaxSkippedPeriods: options.inSyncMaxSkippedPeriods,
      },
    )
    this.#dialer = new Dialer({ transport, peers, logger, run }, { seedAddrs: options.seedAddrs })
    this.stats = statsOf(this.#outbox.stats, this.#ingest.stats, this.#sessions.stats, this.#source.stats, this.#strikes.stats)
  }

  /** Wires events and starts the timers. Idempotent. */
  start(): void {
    if (this.#run.running) return
    this.#run.running = true
    this.#run.controller = new AbortController()
    this.#outbox.start()
    this.#transport.on('gossip', this.#ingest.onGossip)
    this.#transport.on('heads', this.#ingest.onHeads)
    this.#transport.on('invalid', this.#onInvalid)
    this.#transport.on('peer:connect', this.#onConnect)
    this.#transport.on('peer:disconnect', this.#onDisconnect)
    this.#transport.on('peer:subscribed', this.#onSubscribed)
    this.#transport.handleSync((stream, peer) => this.#sessions.serve(stream, peer))
    this.#transport.handleResync((stream, peer) => this.#resync.serve(stream, peer.peerId))
    for (const peerId of this.#transport.connectedPeers()) this.#onConnect(peerId)
    this.#sessions.start()
    this.#dialer.start()
    if (this.#gcInterval > 0) {
      this.#gcTimer = setInterval(() => void this.collectTombstones().catch(() => undefined), this.#gcInterval)
      this.#gcTimer.unref()
    }
  }

  /** Runs one tombstone GC sweep now (one at a time); resolves with the number purged. */
  collectTombstones(): Promise<number> {
    this.#sweeping ??= this.gc
      .sweep({ signal: this.#run.signal })
      .catch((error: unknown) => {
        if (this.#run.running) this.#log.warn({ err: error }, 'tombstone GC sweep failed')
        return 0
      })
      .finally(() => {
        this.#sweeping = undefined
      })
    return this.#sweeping
  }

  /** Stops timers and sessions; waits for in-flight ingestion. Idempotent. */
  async stop(): Promise<void> {
    if (!this.#run.running) return
    this.#run.running = false
    // Changes not yet published reach peers by anti-entropy.
    this.#outbox.stop()
    this.#dialer.stop()
    clearInterval(this.#gcTimer)
    this.#sessions.stop()
    this.#run.controller.abort(new Error('replicator stopping'))
    this.#transport.off('gossip', this.#ingest.onGossip)
    this.#transport.off('heads', this.#ingest.onHeads)
    this.#transport.off('invalid', this.#onInvalid)
    this.#transport.off('peer:connect', this.#onConnect)
    this.#transport.off('peer:disconnect', this.#onDisconnect)
    this.#transport.off('peer:subscribed', this.#onSubscribed)
    await this.#ingest.idle()
    await this.#sweeping
  }

  /** Runs an anti-entropy session with a connected peer (one at a time per peer). */
  syncWith(peerId: string): void {
    this.#sessions.syncWith(peerId)
  }

  /** Resolves when no session is running and nothing is being ingested (for tests and shutdown). */
  async idle(): Promise<void> {
    await this.#sessions.idle()
    await this.#ingest.idle()
  }

  /** Hands remote changes to the one ingest path (see {@link Ingest.ingest}). */
  ingest(changes: readonly ChangeRecord[]): Promise<void> {
    return this.#ingest.ingest(changes)
  }

  /** Changes received from a peer's session (see {@link Ingest.receiveChanges}). */
  receiveChanges(changes: readonly ChangeRecord[], peer: SyncPeer): Promise<void> {
    return this.#ingest.receiveChanges(changes, peer)
  }

  /** Full refresh of a namespace from a peer (see {@link NamespaceResync.resyncNamespace}). */
  resyncNamespace(ns: string, options: { from?: string; signal?: AbortSignal } = {}): Promise<{ from: string; entities: number; removed: number }> {
    return this.#resync.resyncNamespace(ns, options)
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

  /** Link probes sent and connections closed as dead (zeros when the transport has no link monitor). */
  get linkStats(): Readonly<{ probes: number; deadLinks: number }> {
    return this.#transport.linkStats ?? { probes: 0, deadLinks: 0 }
  }

  /** Changes held until their predecessors arrive. */
  get pendingCount(): number {
    return this.#ingest.pendingCount
  }

  /** The least time between two gossip publishes now, in ms (it grows with the local change rate). */
  get gossipSpacingMs(): number {
    return this.#outbox.spacingMs
  }

  /** True while any anti-entropy session runs. */
  get syncing(): boolean {
    return this.#sessions.syncing
  }
}

/** Whether the replicator runs, and the controller whose signal ends its sessions, streams and dials when it stops. */
class RunState implements ReplicationRun {
  running = false
  controller = new AbortController()
  get signal(): AbortSignal {
    return this.controller.signal
  }
}

/** One live view of the counters of several parts (each counter is kept by exactly one part). */
function statsOf(...parts: object[]): ReplicationStats {
  const view = {}
  for (const part of parts) {
    for (const key of Object.keys(part)) {
      if (key in view) throw new Error(`replication counter ${key} is kept by two parts`)
      Object.defineProperty(view, key, { enumerable: true, get: () => (part as Record<string, number>)[key] })
    }
  }
  return view as ReplicationStats
}
