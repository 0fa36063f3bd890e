import type { Connection, Stream } from '@libp2p/interface'
import { setTimeout as sleep } from 'node:timers/promises'
import { byteStream } from '@libp2p/utils'
import type { Libp2p } from 'libp2p'

/**
 * Stream protocol of the link monitor: one long-lived stream per connection, on which the side
 * that dialed sends a probe every interval and the other answers it.
 */
export const ALIVE_PROTOCOL = '/meshsync/alive/1.0.0'
/** Default probe period. */
export const ALIVE_INTERVAL_MS = 5000
/** Default wait for an answer before the link counts as dead. */
export const ALIVE_TIMEOUT_MS = 4000
/** Bytes of a state digest carried by every probe and answer. */
export const DIGEST_BYTES = 8

const PROBE = 1
const ANSWER = 2
const FRAME_BYTES = 1 + DIGEST_BYTES
const NO_DIGEST = new Uint8Array(DIGEST_BYTES)

export interface LinkMonitorOptions {
  readonly intervalMs?: number
  readonly timeoutMs?: number
  /** This node's state digest, sent with every probe and answer (8 bytes; zeros: none). */
  readonly digest?: () => Uint8Array
  /** A peer's digest arrived (on a probe or an answer). */
  readonly onDigest?: (peerId: string, digest: Uint8Array) => void
}

/** The libp2p node a monitor watches (its ping service probes peers without the protocol). */
type MonitoredNode = Libp2p<{ ping: { ping(peer: Connection['remotePeer'], options?: { signal?: AbortSignal }): Promise<number> } }>

/** Counters of the link monitor (also exported as metrics). */
export interface LinkMonitorStats {
  probes: number
  /** Connections closed because a probe went unanswered (or a probe stopped coming). */
  deadLinks: number
}

/**
 * Finds connections whose link went silent (a cut cable, a partition, a peer frozen or killed
 * without a FIN) and closes them, so the overlay redials and the next connection starts fresh
 * instead of waiting out TCP's retransmission backoff after the link heals
 * (docs/architecture.md, Membership and discovery).
 *
 * libp2p's own connection monitor does the same with a new ping stream per connection per
 * interval: a stream negotiation (multistream-select, a peer-store write on both sides) each time,
 * which on an idle node with 7 connections was about half its CPU. Here each connection keeps one
 * stream, and a probe is one 9-byte frame each way. The probe also carries each side's state
 * digest (a hash of its version vector), so the replicator can skip the periodic anti-entropy
 * session with a peer that already holds exactly what it holds.
 *
 * The dialing side probes; the answering side closes the connection when probes stop coming.
 * A peer that does not speak the protocol (an older version during a rolling upgrade) is probed
 * with libp2p's ping instead.
 */
export class LinkMonitor {
  readonly stats: LinkMonitorStats = { probes: 0, deadLinks: 0 }
  readonly #node: MonitoredNode
  readonly #interval: number
  readonly #timeout: number
  readonly #digest: () => Uint8Array
  readonly #onDigest: (peerId: string, digest: Uint8Array) => void
  readonly #monitored = new WeakSet<Connection>()
  #stopped = false
  readonly #controller = new AbortController()

  constructor(node: MonitoredNode, options: LinkMonitorOptions = {}) {
    this.#node = node
    this.#interval = options.intervalMs ?? ALIVE_INTERVAL_MS
    this.#timeout = options.timeoutMs ?? ALIVE_TIMEOUT_MS
    this.#digest = options.digest ?? (() => NO_DIGEST)
    this.#onDigest = options.onDigest ?? (() => undefined)
  }

  async start(): Promise<void> {
    await this.#node.handle(ALIVE_PROTOCOL, (stream, connection) => void this.#answer(stream, connection), { maxInboundStreams: 2, maxOutboundStreams: 2 })
    this.#node.addEventListener('connection:open', (e) => {
      if (e.detail.direction === 'outbound') void this.#probe(e.detail)
    })
    for (const connection of this.#node.getConnections()) if (connection.direction === 'outbound') void this.#probe(connection)
  }

  stop(): void {
    this.#stopped = true
    this.#controller.abort()
  }

  #frame(type: number): Uint8Array {
    const frame = new Uint8Array(FRAME_BYTES)
    frame[0] = type
    const digest = this.#digest()
    frame.set(digest.subarray(0, DIGEST_BYTES), 1)
    return frame
  }

  #dead(connection: Connection, why: string): void {
    if (this.#stopped || connection.status !== 'open') return
    this.stats.deadLinks++
    connection.abort(new Error(`link silent: ${why}`))
  }

  /** The dialing side: one stream, a probe every interval, the connection closed when an answer does not come in time. */
  async #probe(connection: Connection): Promise<void> {
    if (this.#monitored.has(connection)) return
    this.#monitored.add(connection)
    let stream: Stream
    try {
      stream = await connection.newStream(ALIVE_PROTOCOL, { signal: AbortSignal.any([this.#controller.signal, AbortSignal.timeout(this.#timeout + this.#interval)]) })
    } catch (error) {
      if (this.#stopped || connection.status !== 'open') return
      if ((error as Error).name === 'UnsupportedProtocolError') await this.#pingLoop(connection)
      else this.#dead(connection, `no probe stream (${(error as Error).message})`)
      return
    }
    const bytes = byteStream(stream)
    try {
      while (!this.#stopped && connection.status === 'open') {
        await sleep(this.#interval * (0.8 + Math.random() * 0.4), undefined, { signal: this.#controller.signal })
        if (this.#stopped || connection.status !== 'open') break
        const signal = AbortSignal.any([this.#controller.signal, AbortSignal.timeout(this.#timeout)])
        this.stats.probes++
        await bytes.write(this.#frame(PROBE), { signal })
        const answer = (await bytes.read({ bytes: FRAME_BYTES, signal })).subarray()
        if (answer[0] !== ANSWER) throw new Error('malformed answer')
        this.#onDigest(connection.remotePeer.toString(), answer.slice(1, FRAME_BYTES))
      }
    } catch (error) {
      this.#dead(connection, (error as Error).message)
    } finally {
      stream.abort(new Error('monitor stopped'))
    }
  }

  /** The answering side: answers each probe; the connection is closed when probes stop coming. */
  async #answer(stream: Stream, connection: Connection): Promise<void> {
    const bytes = byteStream(stream)
    try {
      while (!this.#stopped && connection.status === 'open') {
        const signal = AbortSignal.any([this.#controller.signal, AbortSignal.timeout(this.#interval * 1.2 + this.#timeout)])
        const probe = (await bytes.read({ bytes: FRAME_BYTES, signal })).subarray()
        if (probe[0] !== PROBE) throw new Error('malformed probe')
        this.#onDigest(connection.remotePeer.toString(), probe.slice(1, FRAME_BYTES))
        await bytes.write(this.#frame(ANSWER), { signal })
      }
    } catch (error) {
      this.#dead(connection, (error as Error).message)
    } finally {
      stream.abort(new Error('monitor stopped'))
    }
  }

  /** A peer without the protocol: libp2p's ping, a new stream each interval. */
  async #pingLoop(connection: Connection): Promise<void> {
    try {
      while (!this.#stopped && connection.status === 'open') {
        await sleep(this.#interval, undefined, { signal: this.#controller.signal })
        if (this.#stopped || connection.status !== 'open') break
        this.stats.probes++
        await this.#node.services.ping.ping(connection.remotePeer, { signal: AbortSignal.any([this.#controller.signal, AbortSignal.timeout(this.#timeout)]) })
      }
    } catch (error) {
      this.#dead(connection, (error as Error).message)
    }
  }
}
