/**
 * What the other end of recent connections sent during the private-network handshake, so that a
 * dial that failed can be told apart by its cause (docs/operations.md, Dial failures): nothing
 * answered, something that is not meshsync answered, or a meshsync node with another cluster key.
 *
 * The pnet handshake cannot say "wrong key" itself: each side sends a random 24-byte nonce and
 * then XORs everything with a keystream of the key, so a wrong key only shows as garbage after the
 * nonce. The first thing libp2p sends over the protected stream is the multistream-select header,
 * so bytes that decrypt to it prove the keys match, and a peer that sent its nonce alone and then
 * dropped the connection (or sent bytes that decrypt to anything else) holds another key.
 */

/** The multistream-select header (length-prefixed), the first bytes any libp2p node sends after pnet. */
export const MULTISTREAM_HEADER = new TextEncoder().encode('\x13/multistream/1.0.0\n')

/** The pnet nonce's length: what a meshsync node sends first, alone. */
export const NONCE_BYTES = 24

/** Raw bytes of the other end kept per connection (enough to show what a non-meshsync service said). */
const RAW_KEPT = 64

/** Connections remembered (the newest; older ones are forgotten). */
const DEFAULT_CAPACITY = 256

/** One connection's handshake as seen from this node. */
export interface HandshakeObservation {
  /** The other end, `host:port` (as its socket shows it). */
  readonly remote: string
  readonly direction: 'inbound' | 'outbound'
  /** When the connection reached the protector (ms since the epoch). */
  readonly at: number
  /** The first bytes the other end sent, before decryption (up to 64). */
  raw: Uint8Array
  /** Bytes the other end sent in all, before the protector stopped counting (at 64 and over). */
  rawBytes: number
  /** Size of the first chunk received (a meshsync node sends its nonce alone). */
  firstChunk: number
  /** The first bytes after the nonce, decrypted with this node's key (up to the header's length). */
  decrypted: Uint8Array
}

/** What the handshake shows about the other end's key, once it can tell. */
export type KeyVerdict = 'match' | 'mismatch' | 'unknown'

/** Whether the decrypted bytes show the keys match (the multistream header), differ (anything else), or cannot tell yet. */
export function keyVerdict(o: Pick<HandshakeObservation, 'decrypted'>): KeyVerdict {
  const d = o.decrypted
  if (d.length === 0) return 'unknown'
  for (let i = 0; i < Math.min(d.length, MULTISTREAM_HEADER.length); i++) if (d[i] !== MULTISTREAM_HEADER[i]) return 'mismatch'
  return d.length >= MULTISTREAM_HEADER.length ? 'match' : 'unknown'
}

/** Whether bytes read as text (a banner, an HTTP answer): at least 90% printable ASCII, tabs and line ends. */
export function looksLikeText(bytes: Uint8Array): boolean {
  if (bytes.length === 0) return false
  let printable = 0
  for (const b of bytes) if ((b >= 0x20 && b < 0x7f) || b === 0x09 || b === 0x0a || b === 0x0d) printable++
  return printable >= 0.9 * bytes.length
}

/** The first line of text bytes, for a message (at most 60 characters). */
export function firstLine(bytes: Uint8Array): string {
  const line = new TextDecoder().decode(bytes).split(/\r?\n/)[0] ?? ''
  return line.length > 60 ? `${line.slice(0, 57)}...` : line
}

/** Feeds one connection's bytes into its observation; the protector drops it once it has what it needs. */
export interface HandshakeRecorder {
  /** Bytes as they arrived on the socket. */
  raw(chunk: Uint8Array): void
  /** Forgets the raw bytes past the first `bytes` (the protector hands them on again, to be recorded once more). */
  rewind(bytes: number): void
  /** Bytes after the nonce, decrypted; false once enough are kept (the caller stops calling). */
  decrypted(chunk: Uint8Array): boolean
}

/**
 * A bounded log of recent handshakes. The protector records each connection; a failed dial looks
 * up the one to its address; `onInboundMismatch` hears of an inbound connection whose bytes did
 * not decrypt to the multistream header (another cluster key, or a client that is not meshsync).
 */
export class HandshakeLog {
  readonly #capacity: number
  readonly #onInboundMismatch: ((o: HandshakeObservation) => void) | undefined
  /** By `direction remote`, the newest last. */
  readonly #entries = new Map<string, HandshakeObservation>()

  constructor(options: { capacity?: number; onInboundMismatch?: (o: HandshakeObservation) => void } = {}) {
    this.#capacity = options.capacity ?? DEFAULT_CAPACITY
    this.#onInboundMismatch = options.onInboundMismatch
  }

  /** Starts the observation of a connection to or from `remote` (`host:port`). */
  begin(remote: string, direction: 'inbound' | 'outbound', now = Date.now()): HandshakeRecorder {
    const o: HandshakeObservation = { remote, direction, at: now, raw: new Uint8Array(0), rawBytes: 0, firstChunk: -1, decrypted: new Uint8Array(0) }
    const key = `${direction} ${remote}`
    this.#entries.delete(key)
    this.#entries.set(key, o)
    if (this.#entries.size > this.#capacity) this.#entries.delete(this.#entries.keys().next().value as string)
    let reported = false
    return {
      raw: (chunk) => {
        if (o.firstChunk < 0) o.firstChunk = chunk.length
        if (o.raw.length < RAW_KEPT) o.raw = concat(o.raw, chunk.subarray(0, RAW_KEPT - o.raw.length))
        o.rawBytes += chunk.length
      },
      rewind: (bytes) => {
        o.raw = o.raw.subarray(0, Math.min(bytes, o.raw.length))
        o.rawBytes = Math.min(bytes, o.rawBytes)
      },
      decrypted: (chunk) => {
        if (o.decrypted.length < MULTISTREAM_HEADER.length) o.decrypted = concat(o.decrypted, chunk.subarray(0, MULTISTREAM_HEADER.length - o.decrypted.length))
        const verdict = keyVerdict(o)
        if (verdict === 'mismatch' && direction === 'inbound' && !reported) {
          reported = true
          this.#onInboundMismatch?.(o)
        }
        return verdict === 'unknown'
      },
    }
  }

  /**
   * The newest outbound observation to one of `remotes` (`host:port`) that began at or after
   * `since`; failing that, the newest to the same port (a DNS name dialed resolves to an address
   * the socket shows instead).
   */
  findOutbound(remotes: readonly string[], since: number): HandshakeObservation | undefined {
    let exact: HandshakeObservation | undefined
    let samePort: HandshakeObservation | undefined
    const ports = new Set(remotes.map((r) => r.slice(r.lastIndexOf(':') + 1)))
    for (const o of this.#entries.values()) {
      if (o.direction !== 'outbound' || o.at < since) continue
      if (remotes.includes(o.remote)) exact = o
      else if (ports.has(o.remote.slice(o.remote.lastIndexOf(':') + 1))) samePort = o
    }
    return exact ?? samePort
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length)
  out.set(a)
  out.set(b, a.length)
  return out
}

/** `host:port` of a TCP multiaddr (`/ip4/1.2.3.4/tcp/5` → `1.2.3.4:5`), or undefined when it has no host and TCP port. */
export function hostPortOf(ma: { getComponents(): { name: string; value?: string | undefined }[] }): string | undefined {
  let host: string | undefined
  let port: string | undefined
  for (const c of ma.getComponents()) {
    if (c.name === 'ip4' || c.name === 'ip6' || c.name === 'dns' || c.name === 'dns4' || c.name === 'dns6') host = c.value
    else if (c.name === 'tcp') port = c.value
  }
  return host !== undefined && port !== undefined ? `${host}:${port}` : undefined
}
