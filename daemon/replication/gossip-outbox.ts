import type { ReplicationTransport } from '../../transport/index.ts'
import type { CommittedChange, EntityStore } from '../store/entity-store.ts'
import { DEFAULT_GOSSIP_PACE_MAX_MS, DEFAULT_GOSSIP_PACE_MS, GossipPace } from './gossip-pace.ts'
import type { PeerBook } from './peer-book.ts'

/** Counters of local gossip (also exported as metrics). */
export interface GossipOutboxStats {
  /** Local change records handed to gossip (published when a peer listens). */
  gossipOut: number
  /** Connected peers a local commit's gossip did not reach (each is synced at once instead). */
  gossipUnreached: number
}

export interface GossipOutboxComponents {
  readonly store: EntityStore
  readonly transport: Pick<ReplicationTransport, 'publishChanges'>
  readonly peers: PeerBook
  /** Syncs with the connected peers a publish did not reach; returns how many they were. */
  readonly sessions: { syncUnreached(reached: ReadonlySet<string>): number }
}

/**
 * Local commits go out on gossip (the fast path), paced: the commits of a spacing share one
 * message (gossip-pace.ts). A connected peer a publish did not reach is synced at once.
 */
export class GossipOutbox {
  readonly stats: GossipOutboxStats = { gossipOut: 0, gossipUnreached: 0 }
  readonly #store: EntityStore
  readonly #transport: Pick<ReplicationTransport, 'publishChanges'>
  readonly #peers: PeerBook
  readonly #sessions: GossipOutboxComponents['sessions']
  readonly #pace: GossipPace
  /** Local changes committed and not yet published. */
  #outbox: CommittedChange[] = []
  /** Cancels the publish scheduled for the outbox (undefined: none scheduled). */
  #cancelPublish: (() => void) | undefined
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

  constructor(components: GossipOutboxComponents, options: { paceMs?: number | undefined; paceMaxMs?: number | undefined } = {}) {
    this.#store = components.store
    this.#transport = components.transport
    this.#peers = components.peers
    this.#sessions = components.sessions
    this.#pace = new GossipPace(options.paceMs ?? DEFAULT_GOSSIP_PACE_MS, options.paceMaxMs ?? DEFAULT_GOSSIP_PACE_MAX_MS)
  }

  /** Publishes local commits from now on. */
  start(): void {
    this.#store.on('commit', this.#onCommit)
  }

  /** Stops publishing; changes not yet published reach peers by anti-entropy. */
  stop(): void {
    this.#cancelPublish?.()
    this.#cancelPublish = undefined
    this.#outbox = []
    this.#store.off('commit', this.#onCommit)
  }

  /** The least time between two gossip publishes now, in ms (it grows with the local change rate). */
  get spacingMs(): number {
    return this.#pace.spacingMs(performance.now())
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
      this.stats.gossipUnreached += this.#sessions.syncUnreached(new Set(recipients))
    })
  }
}
