import type { Logger } from 'pino'
import { counterOf, dominates, type VersionVector } from '../../crdt/index.ts'
import type { AckEntry, GcHello } from '../../transport/index.ts'
import type { EntityStore, TombstoneInfo } from '../store/entity-store.ts'

/**
 * Tombstone garbage collection (docs/tombstone-gc.md). A tombstone is purged once
 * 1. its grace period has passed (from then on, writes to it anywhere start a new incarnation,
 *    which depends on nothing of the old document), and
 * 2. every member of the cluster was seen, after the grace period plus the allowed clock skew,
 *    with a vector that includes the tombstone, and this node holds every change that member
 *    had made by then (so no write made on the old document can still arrive here).
 * Members are every origin in this node's vector, every peer it knows, and every node its peers
 * report; observations travel in sync HELLOs, so a line A-B-C still collects. A HELLO carries a
 * peer only the observations it may lack ({@link TombstoneCollector.helloFor}).
 */

/**
 * Observations are passed on again to a peer that holds one of the same member only once they fall
 * in a later period of this fraction of the grace period (1 h at the default 24 h): what counts
 * for a purge is being seen after the grace period, so this delays a purge by at most one such
 * period, and an idle cluster's HELLOs stop carrying a payload per member.
 */
export const ACK_PERIODS_PER_GRACE = 24

/** Tunables of the collector. */
export interface TombstoneGcOptions {
  /** Largest clock difference between nodes that the rules allow for. */
  readonly clockSkewMs?: number
  /** Observations kept per member. */
  readonly historyPerMember?: number
  readonly now?: () => number
}

/** A namespace where a peer lacks tombstone purges this node made. */
export interface StaleNamespace {
  readonly ns: string
  readonly horizon: VersionVector
}

/** Per member, the latest observations of its vector (oldest first). */
export class AckBook {
  readonly #history = new Map<string, AckEntry[]>()
  readonly #limit: number

  constructor(limit = 16) {
    this.#limit = limit
  }

  /** Records that `nodeId` had `vv` at `at` (observer's clock). Out-of-order entries are sorted in. */
  observe(nodeId: string, vv: VersionVector, at: number): void {
    const list = this.#history.get(nodeId) ?? []
    if (list.some((a) => a.at === at && dominates(a.vv, vv))) return
    list.push({ nodeId, vv, at })
    list.sort((a, b) => a.at - b.at)
    while (list.length > this.#limit) list.shift()
    this.#history.set(nodeId, list)
  }

  /** Every member observed, directly or through a peer. */
  members(): string[] {
    return [...this.#history.keys()]
  }

  /** The latest observation of each member (what a HELLO carries). */
  latest(): AckEntry[] {
    return [...this.#history.values()].map((list) => list.at(-1) as AckEntry)
  }

  /** True when some observation of `nodeId` made at or after `since` satisfies `test`. */
  anySince(nodeId: string, since: number, test: (a: AckEntry) => boolean): boolean {
    return this.#history.get(nodeId)?.some((a) => a.at >= since && test(a)) ?? false
  }
}

/**
 * Namespaces in which a peer holding `theirs` (vector) and `theirHorizon` lacks purges this node
 * made: it knows part of the purged history but not all of it, so it may still hold (and spread)
 * entities purged here. Such a peer must reload those namespaces before it syncs.
 */
export function staleNamespaces(
  mine: Readonly<Record<string, VersionVector>>,
  theirs: VersionVector,
  theirHorizon: Readonly<Record<string, VersionVector>>,
): StaleNamespace[] {
  const out: StaleNamespace[] = []
  for (const [ns, horizon] of Object.entries(mine)) {
    if (dominates(theirs, horizon)) continue
    if (Object.hasOwn(theirHorizon, ns) && dominates(theirHorizon[ns] as VersionVector, horizon)) continue
    // A node that knows nothing of the purged origins (a new node) has nothing to spread.
    if (!Object.keys(horizon).some((origin) => counterOf(theirs, origin) > 0)) continue
    out.push({ ns, horizon })
  }
  return out
}

/** Finds stable tombstones and has the store purge them. */
export class TombstoneCollector {
  readonly acks: AckBook
  readonly #store: EntityStore
  readonly #log: Logger
  readonly #skew: number
  readonly #now: () => number
  readonly #knownPeers: () => readonly string[]
  /**
   * Per peer id, the latest observation of each member the peer is known to hold (it sent it in a
   * HELLO, or a HELLO that carried it reached it), and the ack period this started in: each
   * period starts afresh, so a peer that lost its observations (a restart this node did not see
   * as a disconnect) gets them all again within one period.
   */
  readonly #held = new Map<string, { period: number; acks: Map<string, AckEntry> }>()
  /**
   * A node that starts knows no observation, and a peer that did not see it go (no disconnect)
   * sends it only news until its next ack period starts: no purge until a HELLO arrives one ack
   * period after the start, when every peer has sent it all it holds (unless no member is known).
   */
  readonly #observingSince: number
  #observedAll: boolean

  constructor(store: EntityStore, knownPeers: () => readonly string[], logger: Logger, options: TombstoneGcOptions = {}) {
    this.#store = store
    this.#knownPeers = knownPeers
    this.#log = logger
    this.#skew = options.clockSkewMs ?? 60_000
    this.#now = options.now ?? Date.now
    this.acks = new AckBook(options.historyPerMember ?? 16)
    this.#observingSince = this.#now() + this.#ackPeriodMs()
    this.#observedAll = this.#ackPeriodMs() <= 0
  }

  /** Every observation (itself included) and the horizons: a HELLO for a peer whose observations are unknown. */
  hello(): GcHello {
    this.acks.observe(this.#store.nodeId, this.#store.versionVector, this.#now())
    return { acks: this.acks.latest(), horizon: this.#store.purgeHorizon }
  }

  /**
   * What this node tells `peer` in HELLO: the horizons (always whole: the peer checks them every
   * session), and of the latest observation of each member only those the peer may lack: it holds
   * none of that member, or an older one from an earlier ack period ({@link ACK_PERIODS_PER_GRACE}).
   * Neither this node (the peer observes it in this session) nor the peer itself is included.
   * A 1.x node reads such a HELLO as it reads a full one: fewer observations only ever delay a purge.
   */
  helloFor(peer: { peerId: string; nodeId: string }): GcHello {
    const held = this.#heldBy(peer.peerId)
    const period = this.#ackPeriodMs()
    const news = (a: AckEntry): boolean => {
      const h = held.get(a.nodeId)
      if (h === undefined) return true
      return period > 0 ? Math.floor(a.at / period) > Math.floor(h.at / period) : a.at > h.at
    }
    const acks = this.acks.latest().filter((a) => a.nodeId !== this.#store.nodeId && a.nodeId !== peer.nodeId && news(a))
    return { acks, horizon: this.#store.purgeHorizon }
  }

  /** A session with `peerId` succeeded: the peer has read this node's HELLO, and holds what it carried. */
  delivered(peerId: string, sent: GcHello): void {
    this.#hold(peerId, sent.acks)
  }

  /** `peerId` disconnected: it may come back without the observations it held. */
  forgetPeer(peerId: string): void {
    this.#held.delete(peerId)
  }

  /** Records that `nodeId` has `vv` now (a session's ACK). */
  observe(nodeId: string, vv: VersionVector): void {
    this.acks.observe(nodeId, vv, this.#now())
  }

  /**
   * Takes a peer's HELLO: it was seen with `vv` now, and reports what it observed of others (which
   * it holds, so they need not go back to it: `peerId`, the connection's peer id).
   */
  fromHello(nodeId: string, vv: VersionVector, gc: GcHello | undefined, peerId?: string): void {
    const now = this.#now()
    this.acks.observe(nodeId, vv, now)
    if (now >= this.#observingSince) this.#observedAll = true
    const others = (gc?.acks ?? []).filter((a) => a.nodeId !== this.#store.nodeId)
    for (const a of others) this.acks.observe(a.nodeId, a.vv, a.at)
    if (peerId !== undefined) this.#hold(peerId, others)
  }

  #ackPeriodMs(): number {
    return this.#store.tombstoneGraceMs / ACK_PERIODS_PER_GRACE
  }

  /** What `peerId` is known to hold, started afresh at each ack period. */
  #heldBy(peerId: string): Map<string, AckEntry> {
    const ms = this.#ackPeriodMs()
    const period = ms > 0 ? Math.floor(this.#now() / ms) : 0
    let held = this.#held.get(peerId)
    if (held?.period !== period) {
      held = { period, acks: new Map() }
      this.#held.set(peerId, held)
    }
    return held.acks
  }

  #hold(peerId: string, acks: readonly AckEntry[]): void {
    const held = this.#heldBy(peerId)
    for (const a of acks) if (a.at > (held.get(a.nodeId)?.at ?? -Infinity)) held.set(a.nodeId, a)
  }

  /** Every node whose observation a purge needs (this node excluded). */
  members(): string[] {
    const set = new Set<string>([...Object.keys(this.#store.versionVector), ...this.#knownPeers(), ...this.acks.members()])
    set.delete(this.#store.nodeId)
    return [...set].sort()
  }

  /** True when `t` may be purged now (see the module comment). */
  isStable(t: TombstoneInfo, members: readonly string[] = this.members()): boolean {
    const since = t.deletedAt + this.#store.tombstoneGraceMs + this.#skew
    if (this.#now() < since) return false
    if (!this.#observedAll && members.length > 0) return false
    const mine = this.#store.versionVector
    // Any observation after `since` that includes the tombstone will do: every write `m` made on
    // the old document came before it (before `m` froze the tombstone, or before it had the delete).
    return members.every((m) => this.acks.anySince(m, since, (seen) => dominates(seen.vv, t.vv) && counterOf(mine, m) >= counterOf(seen.vv, m)))
  }

  /** One pass over the tombstone index; resolves with the number purged. */
  async sweep(options: { batch?: number; signal?: AbortSignal } = {}): Promise<number> {
    const members = this.members()
    let batch: TombstoneInfo[] = []
    let purged = 0
    for await (const t of this.#store.tombstones()) {
      options.signal?.throwIfAborted()
      if (!this.isStable(t, members)) continue
      batch.push(t)
      if (batch.length >= (options.batch ?? 1000)) {
        purged += await this.#store.purgeTombstones(batch)
        batch = []
      }
    }
    purged += await this.#store.purgeTombstones(batch)
    if (purged > 0) this.#log.info({ purged, members: members.length }, 'tombstones purged')
    return purged
  }
}
