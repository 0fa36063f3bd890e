import type { Connection, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { MeshsyncError } from '../crdt/index.ts'
import { firstLine, hostPortOf, keyVerdict, looksLikeText, NONCE_BYTES, type HandshakeLog, type HandshakeObservation } from './handshake-log.ts'

/**
 * Why a dial failed, from the error libp2p gave and what the other end sent during the handshake
 * (see {@link HandshakeLog}); docs/operations.md, Dial failures, lists the causes. Each is a code
 * of the error table (daemon/errors.ts), the code `POST /v1/peers` answers with.
 */
export const DIAL_FAILURES = {
  /** Nothing accepts TCP connections there (connection refused, no route, connect timed out). */
  PEER_UNREACHABLE: 'unreachable',
  /** Something accepted the connection and sent nothing within the handshake's timeout. */
  PEER_NO_ANSWER: 'no answer',
  /** Something answers there, but not meshsync's handshake (another service, the API port). */
  NOT_MESHSYNC: 'not a meshsync p2p port',
  /** A meshsync node answers there, with another cluster key. */
  PEER_KEY_MISMATCH: 'cluster key mismatch',
  /** The other end closed the connection: its allowlist or a ban, or its connection limit. */
  PEER_REFUSED: 'refused by the peer',
  /** This node's own `p2p.allowPeers` (or a ban) refuses the peer there. */
  PEER_NOT_ALLOWED: 'not allowed by this node',
  /** The node there has another peer id than the address names. */
  WRONG_PEER_ID: 'another peer id',
  /** Any other failure (the message says which). */
  DIAL_FAILED: 'failed',
} as const

/** A code of {@link DIAL_FAILURES}. */
export type DialFailureCode = keyof typeof DIAL_FAILURES

/** Whether a dial failure points at a configuration mistake (worth a warning) rather than a node that is down. */
export function isMisconfiguration(code: DialFailureCode): boolean {
  return code !== 'PEER_UNREACHABLE' && code !== 'PEER_NO_ANSWER' && code !== 'DIAL_FAILED'
}

/** A dial that failed, with its cause's code and a message naming the address and the likely cause. */
export class DialError extends MeshsyncError {
  declare readonly code: DialFailureCode
  /** What was dialed (a multiaddr or a peer id). */
  readonly target: string

  constructor(code: DialFailureCode, target: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options)
    this.name = 'DialError'
    this.target = target
  }
}

/** What is known of a failed dial besides the error. */
export interface DialContext {
  /** The multiaddr or peer id dialed. */
  readonly target: string
  /** The handshake observed on the connection the dial made, if it made one. */
  readonly handshake?: HandshakeObservation | undefined
  /** True when libp2p had an open connection and the check that it carries streams failed (see {@link MeshTransport.dial}). */
  readonly afterUpgrade?: boolean
}

/** The error libp2p gave a failed dial, as a {@link DialError} naming its likely cause. */
export function diagnoseDial(error: unknown, context: DialContext): DialError {
  if (error instanceof DialError) return error
  const { target, handshake } = context
  const text = errorText(error)
  const make = (code: DialFailureCode, why: string): DialError => new DialError(code, target, `cannot connect to ${target}: ${DIAL_FAILURES[code]}: ${why}`, { cause: error })
  if (/denyOutbound|denyDialPeer|denyDialMultiaddr/.test(text)) {
    return make('PEER_NOT_ALLOWED', "this node refuses the peer there (it is not in this node's p2p.allowPeers, or it is banned for sending invalid data)")
  }
  const mismatch = /identity key (\S+) does not match expected remote identity key (\S+)/.exec(text)
  if (mismatch) return make('WRONG_PEER_ID', `the node there is ${mismatch[1]}, not ${mismatch[2]} as the address says (a node that was reinstalled, or an address of another node)`)
  if (/dial self/i.test(text)) return make('DIAL_FAILED', "that is this node's own address")
  // A TCP connect that failed: no handshake of this dial to read.
  if (/ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|EADDRNOTAVAIL|ETIMEDOUT|ENOTFOUND|EAI_AGAIN/.test(text)) {
    return make('PEER_UNREACHABLE', `nothing accepts connections there (${firstErrno(text)})`)
  }
  if (handshake) {
    const byHandshake = diagnoseHandshake(handshake, text, context.afterUpgrade ?? false)
    if (byHandshake) return make(byHandshake.code, byHandshake.why)
  }
  if (!handshake && !upgradeFailed(text) && /aborted|timeout|timed out/i.test(text)) return make('PEER_UNREACHABLE', 'no TCP connection within the dial timeout (a firewall, a wrong host, or a network partition)')
  return make('DIAL_FAILED', oneLine(text))
}

/** The cause a handshake shows, or undefined when it shows none (the error decides). */
function diagnoseHandshake(h: HandshakeObservation, text: string, afterUpgrade: boolean): { code: DialFailureCode; why: string } | undefined {
  const verdict = keyVerdict(h)
  if (verdict === 'match') {
    // The keys match (the peer's first bytes decrypted to the multistream header), and then the
    // connection closed: the peer's connection gater refused this node after the Noise handshake.
    if (afterUpgrade || /reset|closed|EOF|ECONNRESET|EPIPE/i.test(text)) {
      return { code: 'PEER_REFUSED', why: "the peer closed the connection after the handshake (this node's peer id is not in its p2p.allowPeers, or it banned this node for invalid data)" }
    }
    return undefined
  }
  if (looksLikeText(h.raw.subarray(0, 32))) {
    const line = firstLine(h.raw)
    const hint = line.startsWith('HTTP/') ? ' (an HTTP server: the API port? the p2p port is in the listen addresses of `meshsync status`)' : ''
    return { code: 'NOT_MESHSYNC', why: `it answered ${JSON.stringify(line)}${hint}` }
  }
  if (h.rawBytes === 0) {
    if (/abort|timeout|timed out/i.test(text)) return { code: 'PEER_NO_ANSWER', why: 'it accepted the connection and sent nothing (a stopped or overloaded node, or a service that waits for its client to speak)' }
    return { code: 'PEER_REFUSED', why: 'it accepted the connection and closed it before any handshake (a node at its connection limit, or not a meshsync port)' }
  }
  if (h.rawBytes < NONCE_BYTES || h.firstChunk > NONCE_BYTES) {
    // A meshsync node sends its 24-byte nonce alone and nothing more before this node speaks.
    return { code: 'NOT_MESHSYNC', why: `it sent ${h.rawBytes < NONCE_BYTES ? `${h.rawBytes} bytes and closed` : `${h.firstChunk} bytes at once`}, not the private-network handshake` }
  }
  // The nonce came alone; then bytes that do not decrypt to the multistream header, or the
  // connection dropped (the other end could not read this node's bytes either).
  return { code: 'PEER_KEY_MISMATCH', why: "the node there holds another cluster key (compare <data-dir>/cluster.key on both nodes; copy the cluster's key to the node that differs)" }
}

/** An error's message, its causes' and (an AggregateError's) its errors', on one line. */
function errorText(error: unknown): string {
  const parts: string[] = []
  const seen = new Set<unknown>()
  const walk = (e: unknown, depth: number): void => {
    if (e === undefined || e === null || seen.has(e) || depth > 4) return
    seen.add(e)
    if (e instanceof Error) {
      const code = (e as NodeJS.ErrnoException).code
      parts.push(`${e.name}: ${e.message}${typeof code === 'string' ? ` (${code})` : ''}`)
      if (e instanceof AggregateError) for (const inner of e.errors) walk(inner, depth + 1)
      walk(e.cause, depth + 1)
    } else parts.push(String(e))
  }
  walk(error, 0)
  return parts.join('; ')
}

/** Whether libp2p's error says the dial had a connection and failed to upgrade it (encryption, multiplexing). */
function upgradeFailed(text: string): boolean {
  return /EncryptionFailedError|MuxerUnavailableError|UnexpectedEOFError|ConnectionInterceptedError/.test(text)
}

/**
 * How far back a handshake may have begun and still be a failed dial's: libp2p joins a dial to a
 * peer it is dialing already (the overlay's, the bootstrap's), whose handshake began earlier
 * (up to its 10 s timeout).
 */
const JOINED_DIAL_MS = 15_000

function firstErrno(text: string): string {
  return /ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|EADDRNOTAVAIL|ETIMEDOUT|ENOTFOUND|EAI_AGAIN/.exec(text)?.[0] ?? 'no connection'
}

function oneLine(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim()
  return line.length > 300 ? `${line.slice(0, 297)}...` : line
}

/**
 * A protocol no node handles: opening a stream of it proves a new connection carries streams (the
 * other end answers "not supported"), where a peer whose gater refused this node has closed it.
 */
export const DIAL_CHECK_PROTOCOL = '/meshsync/dial-check/1.0.0'

/** The parts of a libp2p node a checked dial uses. */
export interface Dialable {
  dial(to: Multiaddr | PeerId, options: { signal: AbortSignal }): Promise<Connection>
  getConnections(peer?: PeerId): Connection[]
}

/**
 * Dials `to` and checks that the connection carries streams (a peer that refuses this node lets
 * the upgrade finish and then closes it); a failure becomes a {@link DialError} naming its likely
 * cause, from the error and the handshake `handshakes` recorded.
 */
export async function checkedDial(node: Dialable, target: string, to: Multiaddr | PeerId, handshakes: HandshakeLog, signal: AbortSignal): Promise<Connection> {
  const since = Date.now()
  const remote = 'getComponents' in to ? hostPortOf(to) : undefined
  // This dial's handshake or, a dial joined to one under way having none of its own, that dial's.
  const remotes = remote !== undefined ? [remote] : []
  const observed = (): HandshakeObservation | undefined => handshakes.findOutbound(remotes, since) ?? handshakes.findOutbound(remotes, since - JOINED_DIAL_MS)
  let connection: Connection
  try {
    connection = await node.dial(to, { signal })
  } catch (error) {
    // A dial joined to one under way may fail with that dial's error or with its own (an abort, a
    // timeout) while the handshake that tells the cause was the other dial's: look back for it too.
    throw diagnoseDial(error, { target, handshake: observed() })
  }
  try {
    const stream = await connection.newStream(DIAL_CHECK_PROTOCOL, { signal })
    stream.abort(new Error('probe only'))
  } catch (error) {
    if ((error as Error).name === 'UnsupportedProtocolError') return connection
    // Closed for another connection to the same peer (two nodes that dialed each other at once,
    // or one that replaced a connection its restart left behind): connected all the same.
    const other = node.getConnections(connection.remotePeer).find((c) => c.id !== connection.id && c.status === 'open')
    if (other) return other
    const at = hostPortOf(connection.remoteAddr)
    throw diagnoseDial(error, { target, handshake: at !== undefined ? handshakes.findOutbound([at], since - JOINED_DIAL_MS) : observed(), afterUpgrade: true })
  }
  return connection
}
