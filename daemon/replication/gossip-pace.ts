/**
 * Default least time between two gossip publishes. Below the spacing of writes at moderate rates
 * (50/s is 20 ms), so those go out at once.
 */
export const DEFAULT_GOSSIP_PACE_MS = 5
/**
 * Default most time between two gossip publishes, reached under a sustained load of 800 or more
 * local changes a second: at most 50 messages a second per node, each carrying many changes.
 */
export const DEFAULT_GOSSIP_PACE_MAX_MS = 20
/** Half-life of the local change rate the spacing follows. */
export const PACE_RATE_HALF_LIFE_MS = 50

/**
 * How long a node leaves between two gossip publishes. Local changes committed meanwhile share one
 * message, so each peer receives, decrypts, validates and commits one message for all of them.
 *
 * The spacing follows the node's own change rate. While changes come slower than one per `minMs`
 * (200 a second at 5 ms), it stays at `minMs`: a change after a quiet spell goes out at once, and
 * changes a few milliseconds apart each get their own message. Above that it grows with the rate,
 * `minMs` for each change expected per `minMs`, up to `maxMs`: a node under a sustained write load
 * sends at most 1000 / `maxMs` messages a second, each carrying many changes. When the load stops,
 * the rate decays with a half-life of {@link PACE_RATE_HALF_LIFE_MS} and the spacing comes back down.
 */
export class GossipPace {
  readonly #minMs: number
  readonly #maxMs: number
  /** Changes counted so far, each decayed by its age (half-life PACE_RATE_HALF_LIFE_MS) at #at. */
  #level = 0
  #at = -Infinity
  #lastPublish = -Infinity

  /** `maxMs` below `minMs` counts as `minMs` (a fixed spacing); `minMs` 0 publishes every commit at once. */
  constructor(minMs: number, maxMs: number) {
    this.#minMs = Math.max(0, minMs)
    this.#maxMs = Math.max(this.#minMs, maxMs)
  }

  /** `count` local changes were committed at `now` (performance.now()). */
  committed(count: number, now: number): void {
    this.#level = this.#decayed(now) + count
    this.#at = now
  }

  /** Local changes per millisecond lately. */
  rate(now: number): number {
    return (this.#decayed(now) * Math.LN2) / PACE_RATE_HALF_LIFE_MS
  }

  /** The least time between the last publish and the next, at `now`. */
  spacingMs(now: number): number {
    const perMin = this.rate(now) * this.#minMs
    return Math.min(this.#maxMs, Math.max(this.#minMs, this.#minMs * perMin))
  }

  /** How long to wait at `now` before publishing what is waiting (<= 0: publish now). */
  waitMs(now: number): number {
    return this.#lastPublish + this.spacingMs(now) - now
  }

  /** The waiting changes were published at `now`. */
  published(now: number): void {
    this.#lastPublish = now
  }

  #decayed(now: number): number {
    if (this.#level === 0) return 0
    return this.#level * 2 ** (-(now - this.#at) / PACE_RATE_HALF_LIFE_MS)
  }
}
