import type { Logger } from 'pino'
import type { ReplicationTransport } from '../../transport/index.ts'
import { redialDelayMs, type PeerBook } from './peer-book.ts'
import type { ReplicationRun } from './replication-run.ts'

/** How often remembered, disconnected peers whose backoff ran out are dialed. */
const REDIAL_TICK_MS = 500
/** Longest a redial (of a remembered peer or a seed address) may take. */
const DIAL_TIMEOUT_MS = 5000

export interface DialerComponents {
  readonly transport: Pick<ReplicationTransport, 'connectedPeers' | 'dial' | 'maintainsOverlay'>
  readonly peers: PeerBook
  readonly logger: Logger
  readonly run: ReplicationRun
}

/**
 * Keeps the node connected: dials the seed addresses (bootstrap addresses without a peer id) until
 * each has answered once, and, unless the transport maintains an overlay (which then chooses and
 * dials the node's peers among the members; docs/sync-protocol.md, Membership and the overlay),
 * remembered peers that are not connected, with exponential backoff per peer.
 */
export class Dialer {
  readonly #transport: DialerComponents['transport']
  readonly #peers: PeerBook
  readonly #log: Logger
  readonly #run: ReplicationRun
  /** Peers being dialed by {@link #redial}: a connect makes every other peer due at once, and a burst of connects would dial each again. */
  readonly #dialing = new Set<string>()
  /** Seed addresses not answered yet, with when each is due and how many dials failed. */
  readonly #seeds = new Map<string, { due: number; failures: number; dialing: boolean }>()
  #redialTimer: NodeJS.Timeout | undefined

  constructor(components: DialerComponents, options: { seedAddrs?: readonly string[] | undefined } = {}) {
    this.#transport = components.transport
    this.#peers = components.peers
    this.#log = components.logger
    this.#run = components.run
    for (const addr of options.seedAddrs ?? []) this.#seeds.set(addr, { due: 0, failures: 0, dialing: false })
  }

  /** Starts the redial timer. */
  start(): void {
    this.#redialTimer = setInterval(() => this.#redial(), REDIAL_TICK_MS)
    this.#redialTimer.unref()
  }

  stop(): void {
    clearInterval(this.#redialTimer)
  }

  /** A peer came (back): the partition or link that kept the others away may have healed too. Dial them now rather than when their backoff runs out. */
  peerConnected(): void {
    if (this.#transport.maintainsOverlay !== true) this.#peers.dialAllSoon()
    if (this.#run.running) this.#redial()
  }

  /** Dials remembered peers that are not connected, with exponential backoff per peer, and the seed addresses not answered yet. */
  #redial(): void {
    this.#dialSeeds()
    if (this.#transport.maintainsOverlay === true) return
    const connected = new Set(this.#transport.connectedPeers())
    for (const { peerId, addrs } of this.#peers.dueForDial()) {
      if (connected.has(peerId) || this.#dialing.has(peerId)) continue
      this.#peers.dialFailed(peerId) // pushes the next attempt out now; a success resets it
      this.#dialing.add(peerId)
      void (async () => {
        try {
          for (const addr of addrs) {
            try {
              await this.#transport.dial(addr, { signal: this.#dialSignal() })
              return
            } catch {
              // next address
            }
          }
        } finally {
          this.#dialing.delete(peerId)
        }
      })()
    }
  }

  /** Ends a redial when the replicator stops or after 5 s. */
  #dialSignal(): AbortSignal {
    return AbortSignal.any([this.#run.signal, AbortSignal.timeout(DIAL_TIMEOUT_MS)])
  }

  #dialSeeds(now = Date.now()): void {
    for (const [addr, seed] of this.#seeds) {
      if (seed.dialing || seed.due > now) continue
      seed.dialing = true
      // Refused while the overlay has the peers it needs; tried again later.
      void this.#transport
        .dial(addr, { signal: this.#dialSignal(), onlyIfNeeded: true })
        .then(
          (peerId) => {
            this.#seeds.delete(addr)
            this.#log.info({ addr, peerId }, 'bootstrap address answered')
          },
          (err: unknown) => {
            seed.failures++
            seed.due = Date.now() + redialDelayMs(seed.failures)
            this.#log.debug({ addr, err }, 'bootstrap address did not answer')
          },
        )
        .finally(() => (seed.dialing = false))
    }
  }
}
