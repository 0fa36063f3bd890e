import type { Stream } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { VersionVector } from '../../crdt/index.ts'
import { nodeIdOfPeerId, runSyncSession, SyncProtocolError, type GcHello, type ReplicationTransport, type SyncSource } from '../../transport/index.ts'
import { AntiEntropyDue } from './anti-entropy-due.ts'
import type { PeerBook } from './peer-book.ts'
import type { ReplicationRun } from './replication-run.ts'
import { GcHorizonError } from './sync-source.ts'

/** Wait before a failed sync session that was asked for again meanwhile is retried. */
const SYNC_RETRY_MS = 1000
/**
 * Times a session asked for on connect is tried again (a second apart) when it fails while the
 * peer stays connected: a peer that just started may not serve sessions yet, and a connection
 * replaced by a newer one ends the sessions on it (docs/sync-protocol.md).
 */
export const CONNECT_SYNC_RETRIES = 3
/** Wait after a gap is seen before the session that repairs it (a burst makes one session). */
const SYNC_SOON_MS = 100
/**
 * A periodic session with a peer whose state digest matches this node's is skipped, but not for
 * more than this many periods in a row: the sessions also carry tombstone-GC acknowledgements.
 */
export const IN_SYNC_MAX_SKIPPED_PERIODS = 6

/** Counters of anti-entropy sessions (also exported as metrics). */
export interface SessionStats {
  /** Anti-entropy sessions completed. */
  sessions: number
  /** Anti-entropy sessions that failed. */
  sessionFailures: number
  /** Bytes of sync session frames received and sent. */
  bytesIn: number
  bytesOut: number
  /** Sessions that brought news no other path had, passed on to the other peers at once. */
  relayedSessions: number
  /**
   * Periodic sessions not started: a session with the peer (either side's) succeeded less than
   * half a period before, or its state digest showed it holds what this node holds.
   */
  periodicSkipped: number
  /** Of those, the ones skipped because the peer's state digest matched. */
  periodicInSync: number
}

export interface SessionSchedulerComponents {
  readonly transport: ReplicationTransport
  readonly peers: PeerBook
  readonly logger: Logger
  readonly run: ReplicationRun
  /** What sessions send and where what they receive goes. */
  readonly source: SyncSource
  /** What the session with a peer brought that no other path had delivered. */
  readonly ingest: { takeNovel(peerId: string): number }
  /** Tombstone GC: learns what each member has. */
  readonly gc: {
    observe(nodeId: string, vv: VersionVector): void
    /** The peer holds what this node's HELLO of a session that succeeded carried. */
    delivered(peerId: string, sent: GcHello): void
  }
  readonly strikes: { strike(peerId: string, surface: string, reason: string): void }
  /** This node's state digest (its version vector's), compared with what peers send over the transport. */
  readonly digest?: (() => Uint8Array) | undefined
}

/** Tunables of the scheduler. */
export interface SessionSchedulerOptions {
  /** Mean period of the anti-entropy tick (jittered ±25%). */
  readonly antiEntropyIntervalMs?: number | undefined
  /** Most peers one tick starts a session with, and most peers news a session brought is passed on to. */
  readonly antiEntropyFanout?: number | undefined
  /** Idle timeout of a sync stream. */
  readonly streamTimeoutMs?: number | undefined
  /** Most periods in a row a periodic session with an in-sync peer is skipped (default {@link IN_SYNC_MAX_SKIPPED_PERIODS}). */
  readonly inSyncMaxSkippedPeriods?: number | undefined
}

/** Default of {@link SessionSchedulerOptions.antiEntropyFanout}. */
export const DEFAULT_ANTI_ENTROPY_FANOUT = 3

/**
 * Anti-entropy sessions (docs/sync-protocol.md): the one place that decides with which peers, and
 * when, a session runs: on connect, at each periodic tick with up to `fanout` peers (those not
 * synced for longest first, {@link AntiEntropyDue}), whenever a gap is seen or a publish missed a
 * peer, and to pass on what a session brought. One outbound session per peer at a time; a request
 * meanwhile reruns it once.
 */
export class SessionScheduler {
  readonly stats: SessionStats = { sessions: 0, sessionFailures: 0, bytesIn: 0, bytesOut: 0, relayedSessions: 0, periodicSkipped: 0, periodicInSync: 0 }
  readonly #transport: ReplicationTransport
  readonly #peers: PeerBook
  readonly #log: Logger
  readonly #run: ReplicationRun
  readonly #source: SyncSource
  readonly #ingest: SessionSchedulerComponents['ingest']
  readonly #gc: SessionSchedulerComponents['gc']
  readonly #strikes: SessionSchedulerComponents['strikes']
  readonly #interval: number
  readonly #streamTimeout: number
  readonly #antiEntropyDue: AntiEntropyDue
  /** Outbound sessions per peer (one at a time; a request meanwhile reruns it once after), and the retries left if it fails. */
  readonly #sessions = new Map<string, { rerun: boolean; retries: number }>()
  /** Inbound sessions per peer, and peers whose outbound session waits for them to end. */
  readonly #inbound = new Map<string, number>()
  readonly #afterInbound = new Set<string>()
  readonly #gapTimers = new Map<string, NodeJS.Timeout>()
  /** Per peer, the state digest its last link probe carried, and when it came (performance.now()). */
  readonly #peerDigests = new Map<string, { digest: Uint8Array; at: number }>()
  readonly #digest: (() => Uint8Array) | undefined
  readonly #maxQuietMs: number
  readonly #onDigest = (peerId: string, digest: Uint8Array): void => {
    this.#peerDigests.set(peerId, { digest, at: performance.now() })
  }
  readonly #onGone = (peerId: string): void => {
    this.#peerDigests.delete(peerId)
  }
  #timer: NodeJS.Timeout | undefined

  constructor(components: SessionSchedulerComponents, options: SessionSchedulerOptions = {}) {
    this.#transport = components.transport
    this.#peers = components.peers
    this.#log = components.logger
    this.#run = components.run
    this.#source = components.source
    this.#ingest = components.ingest
    this.#gc = components.gc
    this.#strikes = components.strikes
    this.#digest = components.digest
    this.#interval = options.antiEntropyIntervalMs ?? 10_000
    this.#antiEntropyDue = new AntiEntropyDue(this.#interval, { fanout: options.antiEntropyFanout ?? DEFAULT_ANTI_ENTROPY_FANOUT })
    this.#streamTimeout = options.streamTimeoutMs ?? 30_000
    this.#maxQuietMs = (options.inSyncMaxSkippedPeriods ?? IN_SYNC_MAX_SKIPPED_PERIODS) * this.#interval
  }

  /** Starts the periodic timer (the run must be running). */
  start(): void {
    if (this.#digest) {
      this.#transport.on('peer:digest', this.#onDigest)
      this.#transport.on('peer:disconnect', this.#onGone)
    }
    this.#scheduleAntiEntropy()
  }

  /** Stops the periodic timer and the sessions asked for but not started. */
  stop(): void {
    this.#transport.off('peer:digest', this.#onDigest)
    this.#transport.off('peer:disconnect', this.#onGone)
    clearTimeout(this.#timer)
    for (const t of this.#gapTimers.values()) clearTimeout(t)
    this.#gapTimers.clear()
  }

  /** True while any outbound session runs. */
  get syncing(): boolean {
    return this.#sessions.size > 0
  }

  /** Resolves when no session runs and none is about to start. */
  async idle(): Promise<void> {
    while (this.#sessions.size > 0 || this.#inbound.size > 0 || this.#gapTimers.size > 0) await new Promise((r) => setTimeout(r, 20))
  }

  /**
   * On connect (and when a peer joins the topic) both sides would start a session at the same
   * moment and send the same records twice; the side with the smaller peer id starts it, and
   * tries again ({@link CONNECT_SYNC_RETRIES}) if it fails while the peer stays connected: the
   * other side counts on it.
   */
  syncIfInitiator(peerId: string): void {
    if (this.#transport.peerId.toString() < peerId) this.syncWith(peerId, CONNECT_SYNC_RETRIES)
  }

  /** Syncs soon with every connected peer not in `reached` (a publish missed them); returns how many. */
  syncUnreached(reached: ReadonlySet<string>): number {
    let unreached = 0
    for (const peerId of this.#transport.connectedPeers()) {
      if (reached.has(peerId)) continue
      unreached++
      this.syncSoon(peerId)
    }
    return unreached
  }

  /**
   * Sync with `peerId` shortly (debounced, so a burst makes one session): a gap was seen, or
   * gossip did not reach the peer.
   */
  syncSoon(peerId: string): void {
    if (this.#gapTimers.has(peerId) || !this.#run.running) return
    this.#gapTimers.set(
      peerId,
      setTimeout(() => {
        this.#gapTimers.delete(peerId)
        this.syncWith(peerId)
      }, SYNC_SOON_MS),
    )
  }

  /**
   * Runs an anti-entropy session with a connected peer (one at a time per peer). A session that
   * fails while the peer stays connected is tried again a second later when it was asked for
   * again meanwhile, or up to `retries` times.
   */
  syncWith(peerId: string, retries = 0): void {
    if (!this.#run.running) return
    const running = this.#sessions.get(peerId)
    if (running) {
      running.rerun = true
      running.retries = Math.max(running.retries, retries)
      return
    }
    if ((this.#inbound.get(peerId) ?? 0) > 0) {
      // The peer is syncing with us right now; ours runs after, and is then nearly free.
      this.#afterInbound.add(peerId)
      return
    }
    const state = { rerun: false, retries }
    this.#sessions.set(peerId, state)
    void (async () => {
      try {
        do {
          state.rerun = false
          const stream = await this.#transport.openSyncStream(peerId, { signal: AbortSignal.any([this.#run.signal, AbortSignal.timeout(10_000)]) })
          await this.#session(stream, peerId)
        } while (state.rerun && this.#run.running)
      } catch (error) {
        this.sessionFailed(peerId, error)
        // Syncs asked for while this one was failing would be lost: try again while connected.
        // (Not a peer that broke the protocol: that is no passing state.)
        const retry = state.rerun || (state.retries > 0 && !(error instanceof SyncProtocolError))
        if (retry && this.#transport.connectedPeers().includes(peerId)) {
          const left = Math.max(0, state.retries - 1)
          setTimeout(() => {
            if (this.#transport.connectedPeers().includes(peerId)) this.syncWith(peerId, left)
          }, SYNC_RETRY_MS).unref()
        }
      } finally {
        this.#sessions.delete(peerId)
      }
    })()
  }

  /** Serves a session a peer started (its handler of inbound sync streams). */
  async serve(stream: Stream, peer: { peerId: string; nodeId: string }): Promise<void> {
    this.#inbound.set(peer.peerId, (this.#inbound.get(peer.peerId) ?? 0) + 1)
    try {
      await this.#session(stream, peer.peerId)
    } catch (error) {
      this.sessionFailed(peer.peerId, error)
    } finally {
      const left = (this.#inbound.get(peer.peerId) ?? 1) - 1
      if (left > 0) this.#inbound.set(peer.peerId, left)
      else this.#inbound.delete(peer.peerId)
      if (left === 0 && this.#afterInbound.delete(peer.peerId)) this.syncWith(peer.peerId)
    }
  }

  /** Counts a failed session (or resync stream); a peer that broke the protocol gets a strike. */
  sessionFailed(peerId: string, error: unknown): void {
    if (!this.#run.running) return
    this.stats.sessionFailures++
    if (error instanceof GcHorizonError) this.#log.debug({ peerId, err: error }, 'sync session refused: tombstone purges differ')
    else if (error instanceof SyncProtocolError) this.#strikes.strike(peerId, 'sync', error.message)
    else this.#log.debug({ peerId, err: error }, 'sync session failed')
  }

  async #session(stream: Stream, peerId: string): Promise<void> {
    this.#ingest.takeNovel(peerId)
    const started = performance.now()
    const result = await runSyncSession(stream, this.#source, {
      expectedNodeId: nodeIdOfPeerId(peerId),
      remotePeerId: peerId,
      signal: this.#run.signal,
      idleTimeoutMs: this.#streamTimeout,
    })
    this.stats.sessions++
    this.#antiEntropyDue.synced(peerId, started)
    this.#log.debug({ peerId, ms: Math.round(performance.now() - started), bytesIn: result.bytesIn, bytesOut: result.bytesOut }, 'sync session done')
    this.stats.bytesIn += result.bytesIn
    this.stats.bytesOut += result.bytesOut
    if (result.invalidRecords > 0) this.#strikes.strike(peerId, 'sync', `${result.invalidRecords} malformed change records`)
    // The peer's addresses are in the book before the session shows as done in /v1/peers.
    for (const addr of await this.#transport.dialableAddrs(peerId)) this.#peers.remember(peerId, addr)
    this.#peers.synced(peerId, result.peer.nodeId, result.theirVv, result.bytesIn, result.bytesOut)
    this.#gc.observe(result.peer.nodeId, result.theirVv)
    if (result.gcSent) this.#gc.delivered(peerId, result.gcSent)
    // Only a change's origin gossips it, so what this session brought (e.g. writes the peer made
    // before it joined) would reach the other peers only at their next anti-entropy period.
    // Pass it on now (multi-hop) to up to `fanout` peers, those not synced for longest first (the
    // others get it from them, or at their next tick); this stops once a session brings nothing
    // new. "New" is what no other path had delivered: counting the vector's growth instead (gossip
    // lands during every session under steady writes) made each session start more, a storm of
    // sessions.
    const novel = this.#ingest.takeNovel(peerId)
    if (novel > 0) {
      this.stats.relayedSessions++
      const others = this.#transport.connectedPeers().filter((other) => other !== peerId)
      for (const other of this.#antiEntropyDue.relayTargets(others, performance.now())) this.syncSoon(other)
    }
  }

  /**
   * The peer's latest state digest, from the last period, equals this node's (so a session would
   * find nothing to repair), and a session with it ran within the last
   * {@link IN_SYNC_MAX_SKIPPED_PERIODS} periods.
   */
  #inSync(peerId: string, now: number): boolean {
    const theirs = this.#peerDigests.get(peerId)
    if (!this.#digest || !theirs || now - theirs.at > this.#interval) return false
    const lastSynced = this.#antiEntropyDue.lastSynced(peerId)
    if (lastSynced === undefined || now - lastSynced > this.#maxQuietMs) return false
    return Buffer.compare(theirs.digest, this.#digest()) === 0
  }

  #scheduleAntiEntropy(): void {
    if (!this.#run.running) return
    const delay = this.#interval * (0.75 + Math.random() * 0.5)
    this.#timer = setTimeout(() => {
      // A session in progress (either side's) serves as this period's: when it succeeds it is
      // recorded, and rerunning it right after would find nothing new.
      const busy = (peerId: string): boolean => this.#sessions.has(peerId) || this.#inbound.has(peerId)
      const now = performance.now()
      const inSync = (peerId: string): boolean => {
        if (!this.#inSync(peerId, now)) return false
        this.stats.periodicInSync++
        return true
      }
      const { picked, skipped } = this.#antiEntropyDue.pick(this.#transport.connectedPeers(), now, busy, inSync)
      this.stats.periodicSkipped += skipped
      for (const peerId of picked) this.syncWith(peerId)
      this.#scheduleAntiEntropy()
    }, delay)
    this.#timer.unref()
  }
}
