import { Http1Connection, type RawResponse } from './http1-connection.ts'

/** A response of the local API. */
export interface ApiResponse {
  readonly status: number
  readonly body: unknown
}

/**
 * HTTP/1.1 client of the daemon's Unix socket: up to `maxSockets` keep-alive connections, each
 * with one request in flight; further requests wait for a free one, in order (no token needed on
 * the socket). Bodies are passed pre-serialized so the client's JSON work stays out of the
 * measurement, and the connections are {@link Http1Connection}s: on a 2-CPU machine the load
 * generator's CPU is taken from the daemons it measures (node:http cost 46 µs of client CPU per
 * PUT, undici 35, this 17 in the acked-PUT load).
 */
export class SocketClient {
  readonly #socketPath: string
  readonly #maxSockets: number
  readonly #idle: Http1Connection[] = []
  readonly #all = new Set<Http1Connection>()
  readonly #waiting: ((connection: Http1Connection) => void)[] = []
  #closed = false

  constructor(socketPath: string, maxSockets: number) {
    if (!(maxSockets >= 1)) throw new RangeError(`maxSockets must be at least 1, got ${maxSockets}`)
    this.#socketPath = socketPath
    this.#maxSockets = maxSockets
  }

  /** Sends one request; resolves with the status and the parsed JSON body (the text when not JSON). */
  async send(method: string, path: string, body?: string): Promise<ApiResponse> {
    const connection = await this.#acquire()
    let response: RawResponse
    try {
      response = await connection.request(method, path, body)
    } finally {
      this.#release(connection)
    }
    const { status, text } = response
    let parsed: unknown = text
    try {
      parsed = text.length > 0 ? JSON.parse(text) : undefined
    } catch {
      // not JSON: keep the text for the error message
    }
    return { status, body: parsed }
  }

  /** Like {@link send}, but any status other than `expected` is an error. */
  async expect(method: string, path: string, body: string | undefined, expected = 200): Promise<unknown> {
    const res = await this.send(method, path, body)
    if (res.status !== expected) throw new Error(`${method} ${path}: HTTP ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`)
    return res.body
  }

  /** Closes every connection; requests waiting for one are refused. */
  close(): void {
    this.#closed = true
    for (const connection of this.#all) connection.close()
    this.#all.clear()
    this.#idle.length = 0
    for (const wake of this.#waiting.splice(0)) wake(this.#open())
  }

  #acquire(): Promise<Http1Connection> {
    for (let c = this.#idle.pop(); c !== undefined; c = this.#idle.pop()) {
      if (c.usable) return Promise.resolve(c)
      this.#all.delete(c)
    }
    if (this.#closed || this.#all.size < this.#maxSockets) return Promise.resolve(this.#open())
    return new Promise((resolve) => this.#waiting.push(resolve))
  }

  #release(connection: Http1Connection): void {
    if (!connection.usable) {
      // Failed or closed by the server: a waiting request gets a new connection in its place.
      this.#all.delete(connection)
      const wake = this.#waiting.shift()
      if (wake) wake(this.#open())
      return
    }
    const wake = this.#waiting.shift()
    if (wake) wake(connection)
    else this.#idle.push(connection)
  }

  /** A new connection (after close(), one already failed, so its request is refused at once). */
  #open(): Http1Connection {
    const connection = new Http1Connection(this.#socketPath)
    if (this.#closed) connection.close()
    else this.#all.add(connection)
    return connection
  }
}
