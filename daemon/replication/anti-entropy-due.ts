/**
 * Which connected peers are due for a periodic anti-entropy session.
 *
 * A session is symmetric: whichever side starts it, both sides end up with everything the other
 * had when it started. Both sides of a pair run the periodic timer, so without this each pair
 * would sync twice per period. A peer is skipped when a session with it (started by either side,
 * periodic, on connect or after a gap) succeeded less than half a period ago. The side that
 * started the last session is never skipped by it (its next tick comes at least 0.75 of a period
 * later), so a pair still syncs at least once per longest jittered period.
 */
export class AntiEntropyDue {
  readonly #halfInterval: number
  /** Per peer, when the last successful session with it started (performance.now()). */
  readonly #lastStart = new Map<string, number>()

  constructor(intervalMs: number) {
    this.#halfInterval = intervalMs / 2
  }

  /** A session with `peerId` that started at `startedAt` succeeded. */
  synced(peerId: string, startedAt: number): void {
    if (startedAt > (this.#lastStart.get(peerId) ?? -Infinity)) this.#lastStart.set(peerId, startedAt)
  }

  /** The peers of `connected` to sync with at a periodic tick at `now`; forgets peers that are gone. */
  due(connected: readonly string[], now: number): string[] {
    const present = new Set(connected)
    for (const peerId of this.#lastStart.keys()) if (!present.has(peerId)) this.#lastStart.delete(peerId)
    return connected.filter((peerId) => !(now - (this.#lastStart.get(peerId) ?? -Infinity) < this.#halfInterval))
  }
}
