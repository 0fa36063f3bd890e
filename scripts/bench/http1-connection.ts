import { connect, type Socket } from 'node:net'

/** One HTTP/1.1 response: its status and its body's text. */
export interface RawResponse {
  readonly status: number
  readonly text: string
}

const HEAD_END = Buffer.from('\r\n\r\n')
/** A response head longer than this is refused (the daemon's are a few hundred bytes). */
const MAX_HEAD_BYTES = 16 * 1024

/** Why a response could not be read; the connection is closed after it. */
export class HttpWireError extends Error {
  override name = 'HttpWireError'
}

/**
 * Reads HTTP/1.1 responses from the bytes a connection receives: a status line, headers, and a
 * body of `content-length` bytes. Made for the daemon's replies (JSON or text, always with a
 * length); a chunked or unbounded body is refused rather than guessed.
 */
export class ResponseReader {
  /** Bytes received and not yet consumed, in the order received (joined only when needed). */
  #chunks: Buffer[] = []
  #length = 0
  /** The head of the response being received once it is parsed, and where its body ends. */
  #head: { status: number; close: boolean; bodyStart: number; end: number } | undefined

  /** Adds received bytes; returns every response they complete, in order. */
  push(chunk: Buffer): { response: RawResponse; close: boolean }[] {
    this.#chunks.push(chunk)
    this.#length += chunk.length
    const done: { response: RawResponse; close: boolean }[] = []
    for (;;) {
      if (this.#head === undefined) {
        const bytes = this.#joined()
        const headEnd = bytes.indexOf(HEAD_END)
        if (headEnd < 0) {
          if (bytes.length > MAX_HEAD_BYTES) throw new HttpWireError(`response head longer than ${MAX_HEAD_BYTES} bytes`)
          return done
        }
        const head = parseHead(bytes.toString('latin1', 0, headEnd))
        const bodyStart = headEnd + HEAD_END.length
        this.#head = { status: head.status, close: head.close, bodyStart, end: bodyStart + head.length }
      }
      // A large body arrives in many chunks: they are joined once, when it is all there.
      if (this.#length < this.#head.end) return done
      const bytes = this.#joined()
      const { status, close, bodyStart, end } = this.#head
      done.push({ response: { status, text: bytes.toString('utf8', bodyStart, end) }, close })
      this.#head = undefined
      const rest = bytes.subarray(end)
      this.#chunks = rest.length > 0 ? [rest] : []
      this.#length = rest.length
    }
  }

  /** The unconsumed bytes as one buffer (kept as the only chunk). */
  #joined(): Buffer {
    if (this.#chunks.length !== 1) this.#chunks = [Buffer.concat(this.#chunks, this.#length)]
    return this.#chunks[0] as Buffer
  }

  /** Bytes received past the last complete response. */
  get pendingBytes(): number {
    return this.#length
  }
}

function parseHead(head: string): { status: number; length: number; close: boolean } {
  const lines = head.split('\r\n')
  const statusLine = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0] ?? '')
  if (!statusLine) throw new HttpWireError(`not an HTTP/1.x status line: ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`)
  let length: number | undefined
  let close = false
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':')
    if (colon <= 0) throw new HttpWireError(`malformed header line: ${JSON.stringify(line.slice(0, 80))}`)
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    if (name === 'content-length') {
      if (!/^\d+$/.test(value)) throw new HttpWireError(`bad content-length: ${JSON.stringify(value)}`)
      length = Number(value)
    } else if (name === 'transfer-encoding') throw new HttpWireError(`transfer-encoding ${value} is not supported (the bench reads bodies of known length only)`)
    else if (name === 'connection') close = value.toLowerCase().split(/\s*,\s*/).includes('close')
  }
  const status = Number(statusLine[1])
  // 204 and 304 have no body by definition.
  if (length === undefined && (status === 204 || status === 304)) length = 0
  if (length === undefined) throw new HttpWireError(`HTTP ${status} response without content-length`)
  return { status, length, close }
}

/** The request head and body as one string, to be written in one call. */
function requestText(method: string, path: string, body: string | undefined): string {
  const head = `${method} ${path} HTTP/1.1\r\nhost: localhost\r\naccept: application/json\r\n`
  if (body === undefined) return `${head}\r\n`
  return `${head}content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
}

/**
 * One keep-alive HTTP/1.1 connection to a Unix socket, one request at a time. A load generator's
 * client: it shares the machine's CPUs with the daemons it measures, so it does only what the
 * exchange needs (one write per request; no stream objects per request or response).
 */
export class Http1Connection {
  readonly #socket: Socket
  readonly #reader = new ResponseReader()
  #pending: { resolve: (r: RawResponse) => void; reject: (e: Error) => void } | undefined
  #closed: Error | undefined

  constructor(socketPath: string) {
    this.#socket = connect(socketPath)
    this.#socket.on('data', (chunk: Buffer) => this.#onData(chunk))
    this.#socket.on('error', (error) => this.#fail(error))
    this.#socket.on('close', () => this.#fail(new HttpWireError('connection closed by the server')))
  }

  /** False once the connection failed or was closed: it takes no more requests. */
  get usable(): boolean {
    return this.#closed === undefined
  }

  /** Sends a request; resolves with its response. One at a time. */
  request(method: string, path: string, body?: string): Promise<RawResponse> {
    if (this.#closed) return Promise.reject(this.#closed)
    if (this.#pending) return Promise.reject(new Error('Http1Connection: a request is already in flight'))
    const { promise, resolve, reject } = Promise.withResolvers<RawResponse>()
    this.#pending = { resolve, reject }
    this.#socket.write(requestText(method, path, body))
    return promise
  }

  close(): void {
    this.#fail(new HttpWireError('connection closed by the client'))
    this.#socket.destroy()
  }

  #onData(chunk: Buffer): void {
    let responses
    try {
      responses = this.#reader.push(chunk)
    } catch (error) {
      this.#fail(error as Error)
      this.#socket.destroy()
      return
    }
    for (const { response, close } of responses) {
      const pending = this.#pending
      this.#pending = undefined
      if (!pending) {
        this.#fail(new HttpWireError(`unexpected HTTP ${response.status} response with no request in flight`))
        this.#socket.destroy()
        return
      }
      if (close) {
        this.#closed = new HttpWireError('the server closed the connection (connection: close)')
        this.#socket.end()
      }
      pending.resolve(response)
    }
  }

  #fail(error: Error): void {
    this.#closed ??= error
    const pending = this.#pending
    this.#pending = undefined
    pending?.reject(error)
  }
}
