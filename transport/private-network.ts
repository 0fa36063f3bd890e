import type { AbortOptions, ConnectionProtector, MessageStream, MultiaddrConnection } from '@libp2p/interface'
import { AbstractMultiaddrConnection, byteStream } from '@libp2p/utils'
import { xsalsa20 } from '@noble/ciphers/salsa.js'
import type { Uint8ArrayList } from 'uint8arraylist'
import { hostPortOf, type HandshakeLog, type HandshakeRecorder } from './handshake-log.ts'

/**
 * The libp2p private-network protector (pnet, the `/key/swarm/psk/1.0.0/` format), wire-compatible
 * with `@libp2p/pnet`: both sides send a random 24-byte nonce, then every byte is XORed with an
 * XSalsa20 keystream from the pre-shared key and the sender's nonce.
 *
 * Why our own: `@libp2p/pnet` 3 uses the `xsalsa20` package, whose WebAssembly build gives every
 * cipher a 64-byte slot that pnet never releases and a memory capped at 64 MiB; after about 5,000
 * connections in a process's life (reconnects under partitions reach that) or one buffer over the
 * cap, every new connection throws and the node can no longer connect. This one keeps its state
 * in plain JS (`@noble/ciphers`), so nothing outlives the connection.
 */

const NONCE_LENGTH = 24
const KEY_LENGTH = 32
const BLOCK = 64

/** Decodes a pnet key file: `/key/swarm/psk/1.0.0/`, `/base16/`, 64 hex characters. */
export function decodePreSharedKey(file: Uint8Array): Uint8Array {
  const [tag, codec, hex] = new TextDecoder().decode(file).split(/\r\n|\r|\n/)
  if (tag !== '/key/swarm/psk/1.0.0/' || codec !== '/base16/' || hex === undefined || !/^[0-9a-fA-F]{64}$/.test(hex)) {
    throw new Error('invalid pre-shared key: expected /key/swarm/psk/1.0.0/, /base16/ and 64 hex characters')
  }
  return Uint8Array.from(hex.match(/../g) as string[], (h) => Number.parseInt(h, 16))
}

/** Keystream made at a time: 64 XSalsa20 blocks. */
const KEYSTREAM_BYTES = 64 * BLOCK
const ZEROS = new Uint8Array(KEYSTREAM_BYTES)

/**
 * An XSalsa20 keystream XOR that can be fed in pieces of any size. The keystream is made
 * KEYSTREAM_BYTES at a time (XSalsa20 of zeros) and XORed into each piece: a piece is mostly a
 * few hundred bytes, and one XSalsa20 call per piece cost more in setup (the subkey derivation,
 * copies, a block padded to line the piece up) than in the bytes it encrypted.
 */
export class XSalsa20Stream {
  readonly #key: Uint8Array
  readonly #nonce: Uint8Array
  readonly #keystream = new Uint8Array(KEYSTREAM_BYTES)
  /** Bytes of #keystream already used (all of it: none made yet). */
  #used = KEYSTREAM_BYTES
  /** Block counter of the next keystream to make. */
  #counter = 0

  constructor(key: Uint8Array, nonce: Uint8Array) {
    if (key.length !== KEY_LENGTH || nonce.length !== NONCE_LENGTH) throw new Error('xsalsa20 needs a 32-byte key and a 24-byte nonce')
    this.#key = key
    this.#nonce = nonce
  }

  /** XORs `input` with the next `input.length` bytes of the keystream, into new bytes. */
  update(input: Uint8Array): Uint8Array {
    const out = Buffer.allocUnsafe(input.length)
    const keystream = this.#keystream
    let at = 0
    while (at < input.length) {
      if (this.#used === KEYSTREAM_BYTES) {
        xsalsa20(this.#key, this.#nonce, ZEROS, keystream, this.#counter)
        this.#counter += KEYSTREAM_BYTES / BLOCK
        this.#used = 0
      }
      const n = Math.min(input.length - at, KEYSTREAM_BYTES - this.#used)
      const k = this.#used
      for (let i = 0; i < n; i++) out[at + i] = (input[at + i] as number) ^ (keystream[k + i] as number)
      at += n
      this.#used += n
    }
    return out
  }
}

class PrivateConnection extends AbstractMultiaddrConnection {
  readonly #maConn: MessageStream
  readonly #inbound: XSalsa20Stream
  readonly #outbound: XSalsa20Stream
  /** Hears the first decrypted bytes (until they tell whether the keys match; see {@link HandshakeLog}). */
  #recorder: HandshakeRecorder | undefined

  constructor(init: { maConn: MessageStream; psk: Uint8Array; localNonce: Uint8Array; remoteNonce: Uint8Array; log: MultiaddrConnection['log']; recorder?: HandshakeRecorder | undefined }) {
    const maConn = init.maConn as MultiaddrConnection
    super({ log: init.log, remoteAddr: maConn.remoteAddr, direction: maConn.direction })
    this.#maConn = init.maConn
    this.#inbound = new XSalsa20Stream(init.psk, init.remoteNonce)
    this.#outbound = new XSalsa20Stream(init.psk, init.localNonce)
    this.#recorder = init.recorder
    const onChunk = (buf: Uint8Array): void => {
      const plain = this.#inbound.update(buf)
      if (this.#recorder) {
        this.#recorder.raw(buf)
        if (!this.#recorder.decrypted(plain)) this.#recorder = undefined
      }
      this.onData(plain)
    }
    init.maConn.addEventListener('message', (evt) => {
      const data = evt.data
      if (data instanceof Uint8Array) onChunk(data)
      else for (const buf of data) onChunk(buf)
    })
    init.maConn.addEventListener('drain', () => this.onMuxerDrain())
    init.maConn.addEventListener('close', (evt) => {
      if (evt.error != null) {
        if (evt.local) this.abort(evt.error)
        else this.onRemoteReset()
      } else {
        this.onTransportClosed()
      }
    })
  }

  async sendClose(options?: AbortOptions): Promise<void> {
    await this.#maConn.close(options)
  }

  sendData(data: Uint8ArrayList): { sentBytes: number; canSendMore: boolean } {
    return { sentBytes: data.byteLength, canSendMore: this.#maConn.send(this.#outbound.update(data.subarray())) }
  }

  sendReset(err: Error): void {
    this.#maConn.abort(err)
  }

  sendPause(): void {
    this.#maConn.pause()
  }

  sendResume(): void {
    this.#maConn.resume()
  }
}

class PrivateNetworkProtector implements ConnectionProtector {
  readonly #psk: Uint8Array
  readonly #timeoutMs: number
  readonly #handshakes: HandshakeLog | undefined

  constructor(psk: Uint8Array, timeoutMs: number, handshakes: HandshakeLog | undefined) {
    this.#psk = psk
    this.#timeoutMs = timeoutMs
    this.#handshakes = handshakes
  }

  async protect(connection: MessageStream, options?: AbortOptions): Promise<MessageStream> {
    const localNonce = crypto.getRandomValues(new Uint8Array(NONCE_LENGTH))
    const signal = options?.signal ?? AbortSignal.timeout(this.#timeoutMs)
    const recorder = this.#observe(connection)
    const bytes = byteStream(connection)
    let remote: Uint8ArrayList
    try {
      ;[remote] = await Promise.all([bytes.read({ bytes: NONCE_LENGTH, signal }), bytes.write(localNonce, { signal })])
    } finally {
      recorder?.stop()
    }
    return new PrivateConnection({
      maConn: bytes.unwrap(),
      psk: this.#psk,
      localNonce,
      remoteNonce: remote.subarray(),
      log: connection.log.newScope('pnet'),
      recorder,
    })
  }

  /**
   * Records the bytes the other end sends while its nonce is read into the handshake log; `stop`
   * ends that (what came after the nonce is handed on again, and recorded as the connection's).
   */
  #observe(connection: MessageStream): (HandshakeRecorder & { stop(): void }) | undefined {
    const maConn = connection as MultiaddrConnection
    const remote = maConn.remoteAddr ? hostPortOf(maConn.remoteAddr) : undefined
    if (!this.#handshakes || remote === undefined) return undefined
    const recorder = this.#handshakes.begin(remote, maConn.direction)
    const onMessage = (evt: { data: Uint8Array | Uint8ArrayList }): void => {
      for (const buf of evt.data instanceof Uint8Array ? [evt.data] : evt.data) recorder.raw(buf)
    }
    connection.addEventListener('message', onMessage)
    return {
      ...recorder,
      stop: () => {
        connection.removeEventListener('message', onMessage)
        recorder.rewind(NONCE_LENGTH)
      },
    }
  }
}

/**
 * The protector factory for `createLibp2p({ connectionProtector })`, from a pnet key file; with
 * `handshakes`, each connection's first bytes are recorded there (see {@link HandshakeLog}).
 */
export function privateNetwork(keyFile: Uint8Array, options: { timeoutMs?: number; handshakes?: HandshakeLog } = {}): () => ConnectionProtector {
  const psk = decodePreSharedKey(keyFile)
  return () => new PrivateNetworkProtector(psk, options.timeoutMs ?? 5000, options.handshakes)
}
