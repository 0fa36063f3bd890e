import type { Logger } from 'pino'
import type { ReplicationTransport } from '../../transport/index.ts'
import type { PeerBook } from './peer-book.ts'

/** Counters of bad input from peers (also exported as metrics). */
export interface PeerStrikeStats {
  /** Malformed or refused messages and records from peers (dropped). */
  invalidInputs: number
}

export interface PeerStrikesComponents {
  readonly peers: PeerBook
  readonly transport: Pick<ReplicationTransport, 'hangUp'>
  readonly logger: Logger
}

/** Counts bad input against peers; a repeat offender is disconnected and refused a while. */
export class PeerStrikes {
  readonly stats: PeerStrikeStats = { invalidInputs: 0 }
  readonly #peers: PeerBook
  readonly #transport: Pick<ReplicationTransport, 'hangUp'>
  readonly #log: Logger
  readonly #maxStrikes: number
  readonly #banMs: number

  constructor(components: PeerStrikesComponents, options: { maxStrikes: number; banMs: number }) {
    this.#peers = components.peers
    this.#transport = components.transport
    this.#log = components.logger
    this.#maxStrikes = options.maxStrikes
    this.#banMs = options.banMs
  }

  /** Counts a bad input against a peer; a repeat offender is disconnected and refused a while. */
  strike(peerId: string, surface: string, reason: string): void {
    this.stats.invalidInputs++
    const strikes = this.#peers.strike(peerId)
    this.#log.warn({ peerId, surface, reason, strikes }, 'invalid input from peer dropped')
    if (strikes >= this.#maxStrikes) {
      this.#peers.ban(peerId, Date.now() + this.#banMs)
      this.#log.warn({ peerId }, 'peer disconnected: too many invalid messages')
      void this.#transport.hangUp(peerId)
    }
  }

  /** Counts invalid records dropped without a strike (their sender is not known, or not to blame). */
  dropped(count: number): void {
    this.stats.invalidInputs += count
  }
}
