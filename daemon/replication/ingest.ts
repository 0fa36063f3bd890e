import type { Logger } from 'pino'
import { counterOf, type ChangeRecord, type Dot, type EntitySnapshot, type VersionVector } from '../../crdt/index.ts'
import type { InboundGossip, SyncPeer } from '../../transport/index.ts'
import { failpoints, shouldDropRemote } from '../failpoints.ts'
import type { EntityStore } from '../store/entity-store.ts'
import type { PeerBook } from './peer-book.ts'
import { PendingChanges } from './pending-changes.ts'

/** Wait after a peer's heads before pulling what is still missing (the origin's own gossip is given this long). */
const HEADS_GRACE_MS = 300
/** Most remote changes handed to the store in one call (a few group commits). */
const MAX_APPLY_BATCH = 4000

/** Counters of what comes in from peers (also exported as metrics). */
export interface IngestStats {
  /** Change records received by gossip. */
  gossipIn: number
  /** Gossiped change records already here. */
  gossipDuplicates: number
  /** Heads a peer told of gossip it withheld that were still missing here after a grace period (pulled from it). */
  headsBehind: number
  /** Change records received by anti-entropy. */
  recordsIn: number
  /** Entity states received by snapshot catch-up. */
  snapshotEntitiesIn: number
  /** Out-of-order changes dropped because the buffer was full. */
  pendingDropped: number
}

export interface IngestComponents {
  readonly store: EntityStore
  readonly peers: PeerBook
  readonly logger: Logger
  /** Where a gap seen in what came in is pulled from. */
  readonly sessions: { syncSoon(peerId: string): void }
  /** Where invalid records dropped are counted. */
  readonly strikes: { dropped(count: number): void }
}

/**
 * The one path every remote change takes into the store, from gossip and from sync sessions:
 * buffered, then applied in causal order (docs/sync-protocol.md). A gap seen on the way (gossip
 * whose predecessors are missing, heads of withheld gossip) asks for a session with the peer that
 * knows more.
 */
export class Ingest {
  readonly stats: IngestStats = { gossipIn: 0, gossipDuplicates: 0, headsBehind: 0, recordsIn: 0, snapshotEntitiesIn: 0, pendingDropped: 0 }
  readonly #store: EntityStore
  readonly #peers: PeerBook
  readonly #log: Logger
  readonly #sessions: IngestComponents['sessions']
  readonly #strikes: IngestComponents['strikes']
  readonly #pending: PendingChanges
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

  readonly onGossip = (g: InboundGossip): void => void this.#handleGossip(g)
  /**
   * A peer withheld gossip because its origin reaches this node directly. When this node has not
   * seen those changes, it gives the origin's own message a moment, then pulls what is still
   * missing from that peer (the origin's link may be dead without anyone knowing yet).
   */
  readonly onHeads = ({ via, heads }: { via: string; heads: readonly Dot[] }): void => {
    if (!heads.some((d) => d.seq > counterOf(this.#seen, d.origin))) return
    setTimeout(() => {
      const vv = this.#store.versionVector
      if (!heads.some((d) => d.seq > counterOf(vv, d.origin))) return
      this.stats.headsBehind++
      this.#sessions.syncSoon(via)
    }, HEADS_GRACE_MS).unref()
  }

  constructor(components: IngestComponents, options: { maxPendingChanges?: number | undefined } = {}) {
    this.#store = components.store
    this.#peers = components.peers
    this.#log = components.logger
    this.#sessions = components.sessions
    this.#strikes = components.strikes
    this.#pending = new PendingChanges(options.maxPendingChanges ?? 200_000)
  }

  /** Changes held until their predecessors arrive. */
  get pendingCount(): number {
    return this.#pending.size
  }

  /** Resolves once the rounds of ingestion in progress are done. */
  async idle(): Promise<void> {
    await this.#draining?.catch(() => undefined)
  }

  // ---- from sync sessions --------------------------------------------------------------------

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
    if (result.invalid > 0) this.#strikes.dropped(result.invalid)
  }

  async completeSnapshot(vv: VersionVector): Promise<void> {
    await this.#store.completeSnapshot(vv)
    // Changes held for predecessors the snapshot brought can apply now (or are covered).
    await this.ingest([])
  }

  /** How many changes the current session with `peerId` brought that no other path had delivered; counting starts again. */
  takeNovel(peerId: string): number {
    const novel = this.#novelFrom.get(peerId) ?? 0
    this.#novelFrom.delete(peerId)
    return novel
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
    this.#strikes.dropped(invalid.length)
    this.#pending.remove(invalid)
    this.#pending.prune(this.#store.versionVector)
  }

  async #handleGossip(g: InboundGossip): Promise<void> {
    this.#peers.gossiped(g.via, g.bytes, 0)
    if (g.kind === 'announce') {
      this.stats.gossipIn++
      if (g.dot.seq > counterOf(this.#store.versionVector, g.dot.origin)) this.#sessions.syncSoon(g.via)
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
    if (fresh.some((c) => counterOf(after, c.origin) < c.seq)) this.#sessions.syncSoon(g.via)
  }
}

/** Failpoint `drop-remote-1-in-N` (off in production): the change applies, its content is lost. */
function blankSometimes(change: ChangeRecord): ChangeRecord {
  return change.op === 'upsert' && shouldDropRemote() ? { ...change, update: new Uint8Array([0, 0]) } : change
}
