/**
 * Which connected peers a periodic anti-entropy tick syncs with (docs/sync-protocol.md).
 *
 * Each tick starts at most `fanout` sessions, whatever the number of connected peers, so the
 * sessions a node takes part in per minute stay flat as the cluster grows; a change gossip lost
 * still reaches every node, through the overlay, since every connected pair keeps syncing.
 *
 * Among the peers due, the tick takes those not synced (or picked) for longest first: a node with
 * `n` peers reaches each of them at least once every `ceil(n / fanout)` ticks, and a peer whose
 * sessions keep failing does not take the tick from the others.
 *
 * A session is symmetric: whichever side starts it, both sides end up with everything the other
 * had when it started. Both sides of a pair run the periodic timer, so a peer is not due when a
 * session with it (started by either side, periodic, on connect or after a gap) succeeded less
 * than half a period ago. The side that started the last session is never skipped by it (its next
 * tick comes at least 0.75 of a period later), so a pair with fewer peers than the fanout still
 * syncs at least once per longest jittered period.
 */
export class AntiEntropyDue {
  readonly #halfInterval: number
  readonly #fanout: number
  readonly #random: () => number
  /** Per peer, when the last successful session with it started (performance.now()). */
  readonly #lastStart = new Map<string, number>()
  /** Per peer, when a tick (or a relay of news) last picked it. */
  readonly #lastPicked = new Map<string, number>()

  constructor(intervalMs: number, options: { fanout?: number | undefined; random?: () => number } = {}) {
    this.#halfInterval = intervalMs / 2
    this.#fanout = Math.max(1, Math.floor(options.fanout ?? Infinity))
    this.#random = options.random ?? Math.random
  }

  /** Most peers one tick picks. */
  get fanout(): number {
    return this.#fanout
  }

  /** A session with `peerId` that started at `startedAt` succeeded. */
  synced(peerId: string, startedAt: number): void {
    if (startedAt > (this.#lastStart.get(peerId) ?? -Infinity)) this.#lastStart.set(peerId, startedAt)
  }

  /** When the last successful session with `peerId` started (performance.now()), or undefined. */
  lastSynced(peerId: string): number | undefined {
    return this.#lastStart.get(peerId)
  }

  /** The peers of `connected` not synced within half a period of `now`; forgets peers that are gone. */
  due(connected: readonly string[], now: number): string[] {
    this.#forgetAbsent(connected)
    return connected.filter((peerId) => !(now - (this.#lastStart.get(peerId) ?? -Infinity) < this.#halfInterval))
  }

  /**
   * A periodic tick at `now`: up to `fanout` of the due peers that are not `busy` (a session with
   * them runs, and serves as this period's) nor `inSync` (they hold what this node holds), those
   * not synced or picked for longest first. `skipped` counts the connected peers that were not
   * due, busy or in sync.
   */
  pick(
    connected: readonly string[],
    now: number,
    busy: (peerId: string) => boolean = () => false,
    inSync: (peerId: string) => boolean = () => false,
  ): { picked: string[]; skipped: number } {
    const due = this.due(connected, now).filter((peerId) => !busy(peerId) && !inSync(peerId))
    return { picked: this.#takeOldest(due, now), skipped: connected.length - due.length }
  }

  /** Up to `fanout` of `candidates` to pass news on to, those not synced or picked for longest first. */
  relayTargets(candidates: readonly string[], now: number): string[] {
    return this.#takeOldest(candidates, now)
  }

  #takeOldest(candidates: readonly string[], now: number): string[] {
    // Random order first, so that peers never synced (or synced at the same moment) take turns.
    const order = candidates.map((peerId) => ({ peerId, key: this.#lastTouched(peerId), tie: this.#random() }))
    order.sort((a, b) => a.key - b.key || a.tie - b.tie)
    const picked = order.slice(0, this.#fanout).map((o) => o.peerId)
    for (const peerId of picked) this.#lastPicked.set(peerId, now)
    return picked
  }

  #lastTouched(peerId: string): number {
    return Math.max(this.#lastStart.get(peerId) ?? -Infinity, this.#lastPicked.get(peerId) ?? -Infinity)
  }

  #forgetAbsent(connected: readonly string[]): void {
    const present = new Set(connected)
    for (const map of [this.#lastStart, this.#lastPicked]) for (const peerId of map.keys()) if (!present.has(peerId)) map.delete(peerId)
  }
}
