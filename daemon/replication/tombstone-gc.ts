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
 * report; observations travel in each sync HELLO, so a line A-B-C still collects.
 */

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

  constructor(store: EntityStore, knownPeers: () => readonly string[], logger: Logger, options: TombstoneGcOptions = {}) {
    this.#store = store
    this.#knownPeers = knownPeers
    this.#log = logger
    this.#skew = options.clockSkewMs ?? 60_000
    this.#now = options.now ?? Date.now
    this.acks = new AckBook(options.historyPerMember ?? 16)
  }

  /** What this node tells a peer in HELLO: its observations (itself included) and horizons. */
  hello(): GcHello {
    this.acks.observe(this.#store.nodeId, this.#store.versionVector, this.#now())
    return { acks: this.acks.latest(), horizon: this.#store.purgeHorizon }
  }

  /** Records that `nodeId` has `vv` now (a session's ACK). */
  observe(nodeId: string, vv: VersionVector): void {
    this.acks.observe(nodeId, vv, this.#now())
  }

  /** Takes a peer's HELLO: it was seen with `vv` now, and reports what it observed of others. */
  fromHello(nodeId: string, vv: VersionVector, gc: GcHello | undefined): void {
    this.acks.observe(nodeId, vv, this.#now())
    for (const a of gc?.acks ?? []) if (a.nodeId !== this.#store.nodeId) this.acks.observe(a.nodeId, a.vv, a.at)
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
