import type { Dot } from '../crdt/index.ts'

/** How often a node of a small cluster announces its links even when they did not change. */
export const LINKS_REFRESH_MS = 10_000
/**
 * Least average time between two links announcements in the whole cluster: a node's refresh
 * period grows with the members it knows, so what each node receives per minute stays flat in N.
 */
export const CLUSTER_LINKS_SPACING_MS = 2500

/** How often a node that knows `members` others announces its links: 10 s, longer in a larger cluster. */
export function linksRefreshMs(members: number): number {
  return Math.max(LINKS_REFRESH_MS, (members + 1) * CLUSTER_LINKS_SPACING_MS)
}

/** A node's links older than this are not trusted to withhold a forward: three refresh periods. */
export function linksMaxAgeMs(members: number): number {
  return 3 * linksRefreshMs(members)
}
/** Most origins whose links are remembered (the oldest announcement is forgotten first). */
const MAX_ORIGINS = 4096

/** Forwarding decisions taken, for metrics. */
export interface RelayStats {
  /** Changes messages passed on to mesh peers (some peer may not be reached by the origin). */
  forwarded: number
  /** Changes messages not passed on: every mesh peer (but the sender) is reached by the origin directly. */
  withheld: number
}

/**
 * Decides whether a changes message received by gossip is passed on to the mesh.
 *
 * Only a change's origin publishes it, to every subscriber it is connected to (flood publish).
 * gossipsub would also forward each message from every receiver to its mesh peers: in a full mesh
 * of n nodes every receiver then gets n - 2 copies it drops, and spends as much CPU on each as on
 * the one it keeps. Each node announces on the links topic which nodes its changes reach directly;
 * a receiver forwards a message only when a mesh peer (other than the one it came from and the
 * origin) is not among them. With no recent announcement from the origin it forwards, as
 * gossipsub would. What it withholds it tells its peers as heads (origin, seq) a moment later, one
 * small message for a whole burst: a peer the origin's publish did not reach after all (a link
 * that died without anyone noticing yet) sees what it lacks and pulls it from this node.
 */
export class GossipRelay {
  readonly stats: RelayStats = { forwarded: 0, withheld: 0 }
  /** Per origin node id: the node ids its changes reach, and when this was heard. */
  readonly #links = new Map<string, { readonly reaches: ReadonlySet<string>; readonly at: number }>()
  readonly #now: () => number
  /** Per origin, the highest seq withheld since the heads were last taken. */
  readonly #withheld = new Map<string, number>()

  /** Members this node knows (the links' trust window grows with them, {@link linksMaxAgeMs}). */
  readonly #members: () => number

  constructor(options: { now?: () => number; members?: () => number } = {}) {
    this.#members = options.members ?? (() => 0)
    this.#now = options.now ?? Date.now
  }

  /** Records an origin's announcement of the nodes its changes reach (a newer one replaces it). */
  learn(origin: string, reaches: readonly string[]): void {
    this.#links.delete(origin)
    this.#links.set(origin, { reaches: new Set(reaches), at: this.#now() })
    if (this.#links.size > MAX_ORIGINS) this.#links.delete(this.#links.keys().next().value as string)
  }

  /** The node ids `origin` last said its changes reach, while that is recent; undefined otherwise. */
  reachOf(origin: string): ReadonlySet<string> | undefined {
    const links = this.#links.get(origin)
    return links !== undefined && this.#now() - links.at <= linksMaxAgeMs(this.#members()) ? links.reaches : undefined
  }

  /**
   * Whether a changes message whose last change is `head` and that came from node `via` goes on
   * to `meshPeers` (node ids of the peers gossipsub would forward it to; `topicPeers`: every
   * subscriber, the mesh's superset). Counts the decision.
   */
  shouldForward(head: Dot, via: string, meshPeers: readonly string[], topicPeers: readonly string[]): boolean {
    const other = (peer: string): boolean => peer !== via && peer !== head.origin
    // No other subscriber (the end of a line): nothing to pass on, nothing withheld.
    if (!topicPeers.some(other)) return false
    const reaches = this.reachOf(head.origin)
    // A subscriber outside the mesh (not grafted yet, or beyond gossipsub's mesh degree) gets no
    // forward either way; it learns of the change from the heads.
    const forward = meshPeers.some((peer) => other(peer) && !(reaches?.has(peer) ?? false))
    if (forward) {
      this.stats.forwarded++
    } else {
      this.stats.withheld++
      if (head.seq > (this.#withheld.get(head.origin) ?? 0)) this.#withheld.set(head.origin, head.seq)
    }
    return forward
  }

  /**
   * The heads of what was withheld since the last call (highest seq per origin), to be told to the
   * mesh: a peer the origin's publish did not reach after all sees that it lacks them and pulls
   * them from this node. Empty when nothing was withheld.
   */
  takeWithheld(): Dot[] {
    const heads = [...this.#withheld].map(([origin, seq]) => ({ origin, seq }))
    this.#withheld.clear()
    return heads
  }
}
