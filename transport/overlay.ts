import type { Member } from './membership.ts'

/** Default least number of peers a node keeps connections to (`p2p.minConnections`). */
export const DEFAULT_MIN_CONNECTIONS = 6
/** Default most peers a node keeps connections to (`p2p.maxConnections`). */
export const DEFAULT_MAX_CONNECTIONS = 12
/** How often the overlay is checked (before jitter). */
export const OVERLAY_TICK_MS = 1000
/** A connection younger than this is not closed to trim the degree (its peer is still learning the members). */
export const TRIM_GRACE_MS = 3000
/** First wait before dialing a member again after a failed dial; doubles per failure. */
const FIRST_BACKOFF_MS = 1000
/** Longest wait between two dials of a member that keeps failing. */
export const MAX_BACKOFF_MS = 60_000
/** Least time between two connections this node closes to relieve an overloaded peer (see {@link OverlayMaintainer}). */
export const RELIEVE_EVERY_MS = 5000
/** How often, at most, a member not heard from lately is probed (a partition heals through it). */
const PROBE_EVERY_MS = 15_000
/** Dials in flight at once. */
const MAX_PARALLEL_DIALS = 4
/** A peer whose connection closed this recently is dialed last (it may have closed it to trim its own degree). */
const RECENTLY_LEFT_MS = 30_000

/**
 * The band of a degree that the overlay's choices depend on: 0 below the low watermark, 1 with
 * room, 2 at the high watermark, 3 over it. A node announces its degree when its band changes.
 */
export function degreeBand(degree: number, min: number, max: number): number {
  return degree < min ? 0 : degree < max ? 1 : degree === max ? 2 : 3
}

/** What the overlay maintainer reads and does; the transport provides it. */
export interface OverlayHost {
  /** Peers with an open connection, and since when (ms since the epoch, the oldest connection). */
  connected(): ReadonlyMap<string, number>
  members(): readonly Member[]
  dial(peerId: string): Promise<void>
  hangUp(peerId: string): Promise<void>
}

export interface OverlayOptions {
  readonly minConnections: number
  readonly maxConnections: number
  readonly random?: () => number
}

interface DialState {
  failures: number
  nextAt: number
}

/**
 * Keeps the node's degree between two watermarks (docs/sync-protocol.md, Membership and the overlay): below
 * `minConnections` it dials random members it is not connected to (those with room first; a
 * failing member backs off exponentially), above `maxConnections` it closes the connections to
 * the peers that have the most others (never one younger than {@link TRIM_GRACE_MS}, and not a
 * peer known to be at or below the low watermark while the node is within 1.5x the high one).
 * Between the watermarks nothing is dialed or closed (hysteresis), except that a node with more
 * than the low watermark leaves, now and then, a peer that announced more than the high one (a
 * newcomer leaves its bootstrap peer once it has others), with a probability that makes the
 * peer's excess leave on average rather than all its peers at once. Now and then, while below
 * the high watermark, it probes a member it has not heard from lately: when the overlay split in
 * two, that dial joins the halves again. libp2p's connection manager refuses inbound connections
 * past a hard cap above the high watermark.
 */
export class OverlayMaintainer {
  readonly #host: OverlayHost
  readonly #min: number
  readonly #max: number
  readonly #random: () => number
  readonly #dials = new Map<string, DialState>()
  readonly #dialing = new Set<string>()
  readonly #left = new Map<string, number>()
  #lastProbe = 0
  #lastRelief = 0
  #timer: NodeJS.Timeout | undefined
  #soon: NodeJS.Timeout | undefined

  constructor(host: OverlayHost, options: OverlayOptions) {
    if (options.minConnections < 1 || options.maxConnections < options.minConnections) throw new RangeError('need 1 <= minConnections <= maxConnections')
    this.#host = host
    this.#min = options.minConnections
    this.#max = options.maxConnections
    this.#random = options.random ?? Math.random
  }

  get minConnections(): number {
    return this.#min
  }

  get maxConnections(): number {
    return this.#max
  }

  /**
   * Starts the periodic checks, with a first one at once: a node that restarted dials the members
   * it remembers (its peer store) now rather than a tick later, so the catch-up after a restart
   * starts as soon as it listens (docs/sync-protocol.md, Membership and the overlay).
   */
  start(): void {
    const schedule = (): void => {
      this.#timer = setTimeout(() => {
        this.tick()
        schedule()
      }, OVERLAY_TICK_MS * (0.75 + this.#random() * 0.5))
      this.#timer.unref()
    }
    schedule()
    this.tick()
  }

  stop(): void {
    clearTimeout(this.#timer)
    clearTimeout(this.#soon)
    this.#timer = undefined
  }

  /** Checks the overlay shortly (e.g. a member was found or a connection closed). */
  tickSoon(): void {
    if (this.#soon !== undefined || this.#timer === undefined) return
    this.#soon = setTimeout(() => {
      this.#soon = undefined
      this.tick()
    }, 50)
    this.#soon.unref()
  }

  /**
   * Whether a dial to a peer not connected yet would take the node past the low watermark (the
   * overlay has what it needs). A peer being dialed that is connected already (its own dial to
   * this node won) counts once.
   */
  full(): boolean {
    const connected = this.#host.connected()
    return connected.size + this.#dialingOthers(connected) >= this.#min
  }

  /** Dials in flight to peers not connected yet. */
  #dialingOthers(connected: ReadonlyMap<string, number>): number {
    let n = 0
    for (const peerId of this.#dialing) if (!connected.has(peerId)) n++
    return n
  }

  /**
   * A connection to the peer opened: it is dialable, its backoff is forgotten. While the node is
   * below the low watermark, every other member is due at once (a link or partition that kept
   * them away may have healed too); {@link MAX_PARALLEL_DIALS} bounds the dials this makes.
   */
  connected(peerId: string): void {
    this.#dials.delete(peerId)
    this.#left.delete(peerId)
    if (this.#host.connected().size < this.#min) for (const state of this.#dials.values()) state.nextAt = 0
  }

  /**
   * The member announced itself (its announcement reached this node, maybe through others): it is
   * up now, so a backoff earned by dials that failed while it was down or cut off no longer
   * applies, and it is due at the next check (at once, when the node needs connections). A node
   * that restarts announces itself as soon as it has a peer, so members that backed off while it
   * was down dial it again without waiting out their backoff.
   */
  heard(peerId: string): void {
    if (this.#dials.delete(peerId) && !this.#host.connected().has(peerId)) this.tickSoon()
  }

  /** The backoff of a member whose dials failed: how many in a row, and when it is dialed again at the earliest (ms since the epoch). */
  backoff(peerId: string): { readonly failures: number; readonly dueAt: number } | undefined {
    const state = this.#dials.get(peerId)
    return state && { failures: state.failures, dueAt: state.nextAt }
  }

  /** The last connection to the peer closed. */
  disconnected(peerId: string, now = Date.now()): void {
    this.#left.set(peerId, now)
    if (this.#left.size > 4096) this.#left.clear()
  }

  /** One round: dial up to the low watermark, trim down to the high one, maybe probe. */
  tick(now = Date.now()): void {
    const connected = this.#host.connected()
    const degree = connected.size
    const dialing = this.#dialingOthers(connected)
    if (degree + dialing < this.#min) this.#dialMembers(this.#min - degree - dialing, connected, now)
    else if (degree > this.#max) this.#trim(degree - this.#max, connected, now)
    else {
      if (degree > this.#min && now - this.#lastRelief >= RELIEVE_EVERY_MS) this.#relieve(connected, now)
      if (degree < this.#max && now - this.#lastProbe >= PROBE_EVERY_MS) this.#probe(connected, now)
    }
  }

  /** Leaves one peer that announced more than the high watermark, with probability its excess over its degree (see the class comment). */
  #relieve(connected: ReadonlyMap<string, number>, now: number): void {
    const overloaded = this.#host
      .members()
      .filter((m) => m.degree !== undefined && m.degree > this.#max && now - (connected.get(m.peerId) ?? now) >= TRIM_GRACE_MS)
      .sort((a, b) => (b.degree ?? 0) - (a.degree ?? 0))
    const peer = overloaded[0]
    if (peer?.degree === undefined) return
    this.#lastRelief = now
    if (this.#random() < (peer.degree - this.#max) / peer.degree) void this.#host.hangUp(peer.peerId).catch(() => undefined)
  }

  #candidates(connected: ReadonlyMap<string, number>, now: number): Member[] {
    return this.#host.members().filter((m) => !connected.has(m.peerId) && !this.#dialing.has(m.peerId) && m.addrs.length > 0 && (this.#dials.get(m.peerId)?.nextAt ?? 0) <= now)
  }

  #dialMembers(want: number, connected: ReadonlyMap<string, number>, now: number): void {
    const candidates = this.#shuffle(this.#candidates(connected, now))
    // Members with room first (their degree below the high watermark, or not heard yet), alive
    // before remembered ones, and last the ones that just left (perhaps trimmed by them).
    const rank = (m: Member): number =>
      (now - (this.#left.get(m.peerId) ?? -Infinity) < RECENTLY_LEFT_MS ? 4 : 0) + (m.degree !== undefined && m.degree >= this.#max ? 2 : 0) + (m.alive ? 0 : 1)
    candidates.sort((a, b) => rank(a) - rank(b))
    for (const m of candidates.slice(0, Math.min(want, MAX_PARALLEL_DIALS - this.#dialing.size))) this.#dial(m.peerId, now)
  }

  #probe(connected: ReadonlyMap<string, number>, now: number): void {
    this.#lastProbe = now
    const quiet = this.#candidates(connected, now).filter((m) => !m.alive)
    const pick = quiet[Math.floor(this.#random() * quiet.length)]
    if (pick !== undefined && this.#dialing.size < MAX_PARALLEL_DIALS) this.#dial(pick.peerId, now)
  }

  #dial(peerId: string, now: number): void {
    this.#dialing.add(peerId)
    const state = this.#dials.get(peerId) ?? { failures: 0, nextAt: 0 }
    this.#dials.set(peerId, state)
    // Pushed out now; a success forgets it.
    state.failures++
    state.nextAt = now + Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** Math.min(state.failures - 1, 16)) * (0.5 + this.#random() * 0.5)
    void this.#host
      .dial(peerId)
      .then(
        () => this.#dials.delete(peerId),
        () => undefined,
      )
      .finally(() => this.#dialing.delete(peerId))
  }

  #trim(excess: number, connected: ReadonlyMap<string, number>, now: number): void {
    const degreeOf = new Map(this.#host.members().map((m) => [m.peerId, m.degree]))
    // The peers with the most connections lose one first: they stay above the low watermark. Not heard yet: in between.
    const score = (peerId: string): number => degreeOf.get(peerId) ?? this.#min + 0.5
    // A peer at or below the low watermark (a newcomer still joining) is kept unless the node is far over the high one.
    const keepLonely = connected.size <= this.#max * 1.5
    const old = this.#shuffle(
      [...connected].filter(([peerId, since]) => now - since >= TRIM_GRACE_MS && (!keepLonely || score(peerId) > this.#min)).map(([peerId]) => peerId),
    )
    old.sort((a, b) => score(b) - score(a))
    for (const peerId of old.slice(0, excess)) void this.#host.hangUp(peerId).catch(() => undefined)
  }

  #shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.#random() * (i + 1))
      ;[items[i], items[j]] = [items[j] as T, items[i] as T]
    }
    return items
  }
}
