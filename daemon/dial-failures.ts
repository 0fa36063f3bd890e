import type { Logger } from 'pino'
import { DIAL_FAILURES, DialError, isMisconfiguration, type DialFailureCode } from '../transport/dial-diagnosis.ts'
import { firstLine, looksLikeText, type HandshakeObservation } from '../transport/handshake-log.ts'
import { peerIdOfAddress } from '../transport/index.ts'
import type { PeerView } from './replication/peer-book.ts'

/** A bootstrap address that has not answered yet, and why (docs/api.md, `GET /v1/peers`). */
export interface FailingDial {
  readonly addr: string
  /** The cause's code (docs/operations.md, Dial failures). */
  readonly error: DialFailureCode
  /** The last failure's message: the address and the likely cause. */
  readonly message: string
  /** When the address started failing with this cause (ISO 8601). */
  readonly since: string
  /** When it last failed (ISO 8601). */
  readonly lastAt: string
  /** Dials that failed with this cause in a row. */
  readonly attempts: number
}

/** A row of `GET /v1/peers`: a known peer, or a bootstrap address that has not answered (`peerId` null when the address names none). */
export interface PeerRow extends Omit<PeerView, 'peerId'> {
  readonly peerId: string | null
  /** Why dials of this peer's bootstrap address fail, or null. */
  readonly failing: FailingDial | null
}

/**
 * Failed dials in a row before an address is listed, and dials failing with one cause in a row
 * before that cause is logged: one failure proves little (a dial cut by a restart, a partition or
 * an overloaded peer mid-handshake looks like a refusal or a key mismatch), a configuration
 * mistake fails every time.
 */
export const CONFIRM_FAILURES = 3

/** How long an inbound handshake failure from a host stays logged (a warning again after that). */
const INBOUND_QUIET_MS = 60 * 60_000
/** Hosts remembered for that. */
const INBOUND_HOSTS = 1024

/**
 * The bootstrap addresses that fail to answer, with their last error, the count and since when:
 * listed after {@link CONFIRM_FAILURES} failed dials in a row, and logged once per address per
 * cause once that cause failed as many dials in a row (a warning for a configuration mistake, info
 * for a node that is down), and again when the address answers. Inbound connections that fail the
 * handshake are logged once per host an hour. docs/operations.md, Dial failures.
 */
export class DialFailures {
  readonly #log: Logger
  readonly #tracked: ReadonlySet<string>
  /** Per address: its last failure (`attempts`: in a row with that cause), failures in a row of any cause, and the cause last logged. */
  readonly #failing = new Map<string, { dial: FailingDial; failures: number; logged: DialFailureCode | undefined }>()
  readonly #inbound = new Map<string, number>()

  /** `addrs`: the configured bootstrap addresses (dials of other targets are not tracked). */
  constructor(logger: Logger, addrs: readonly string[]) {
    this.#log = logger
    this.#tracked = new Set(addrs)
  }

  /** A dial failed (only DialErrors of tracked addresses count). */
  failed(error: unknown, now = Date.now()): void {
    if (!(error instanceof DialError) || !this.#tracked.has(error.target)) return
    const addr = error.target
    const at = new Date(now).toISOString()
    const last = this.#failing.get(addr)
    const dial: FailingDial =
      last?.dial.error === error.code
        ? { ...last.dial, message: error.message, lastAt: at, attempts: last.dial.attempts + 1 }
        : { addr, error: error.code, message: error.message, since: at, lastAt: at, attempts: 1 }
    const entry = { dial, failures: (last?.failures ?? 0) + 1, logged: last?.logged }
    this.#failing.set(addr, entry)
    if (dial.attempts < CONFIRM_FAILURES || entry.logged === dial.error) return
    entry.logged = dial.error
    const fields = { addr, code: dial.error, attempts: dial.attempts }
    if (isMisconfiguration(dial.error)) this.#log.warn(fields, `bootstrap address fails: ${error.message}`)
    else this.#log.info(fields, `bootstrap address does not answer yet: ${error.message}`)
  }

  /** A dial of `target` succeeded. */
  answered(target: string, peerId: string): void {
    const last = this.#failing.get(target)
    if (!last) return
    this.#failing.delete(target)
    if (last.logged !== undefined) this.#log.info({ addr: target, peerId, after: last.failures }, `bootstrap address answered after ${last.failures} failed dials (${last.dial.error})`)
  }

  /** An inbound connection did not decrypt with this node's cluster key (logged once per host an hour). */
  inboundMismatch(o: HandshakeObservation, now = Date.now()): void {
    const host = o.remote.slice(0, o.remote.lastIndexOf(':'))
    if ((this.#inbound.get(host) ?? -Infinity) > now - INBOUND_QUIET_MS) return
    this.#inbound.delete(host)
    this.#inbound.set(host, now)
    if (this.#inbound.size > INBOUND_HOSTS) this.#inbound.delete(this.#inbound.keys().next().value as string)
    if (looksLikeText(o.raw.subarray(0, 32))) {
      this.#log.info({ remote: o.remote, code: 'NOT_MESHSYNC' as const }, `a client that is not meshsync connected to the p2p port from ${o.remote} (it sent ${JSON.stringify(firstLine(o.raw))})`)
    } else {
      this.#log.warn(
        { remote: o.remote, code: 'PEER_KEY_MISMATCH' as const },
        `a connection from ${o.remote} failed the handshake: ${DIAL_FAILURES.PEER_KEY_MISMATCH} (that node holds another cluster key; compare <data-dir>/cluster.key on both nodes)`,
      )
    }
  }

  /** The addresses that failed {@link CONFIRM_FAILURES} dials in a row or more, oldest failure first. */
  list(): FailingDial[] {
    return [...this.#failing.values()]
      .filter((f) => f.failures >= CONFIRM_FAILURES)
      .map((f) => f.dial)
      .sort((a, b) => a.since.localeCompare(b.since))
  }

  /**
   * The rows of `GET /v1/peers`: every known peer (with `failing` when its bootstrap address
   * fails), then a row per failing address whose peer is not known.
   */
  rows(views: readonly PeerView[]): PeerRow[] {
    const byPeer = new Map<string, FailingDial>()
    const alone: FailingDial[] = []
    const known = new Set(views.map((v) => v.peerId))
    for (const f of this.list()) {
      const peerId = peerIdOfAddress(f.addr)
      if (peerId !== undefined && known.has(peerId)) byPeer.set(peerId, f)
      else alone.push(f)
    }
    return [
      ...views.map((v) => ({ ...v, failing: byPeer.get(v.peerId) ?? null })),
      ...alone.map((f) => ({
        peerId: peerIdOfAddress(f.addr) ?? null,
        nodeId: null,
        addrs: [f.addr],
        connected: false,
        lastSyncAt: null,
        behind: null,
        bytesIn: 0,
        bytesOut: 0,
        gossipBytesIn: 0,
        gossipBytesOut: 0,
        invalidInputs: 0,
        failing: f,
      })),
    ]
  }
}
