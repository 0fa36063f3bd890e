import { Agent, request } from 'node:http'

/** A response of the local API. */
export interface ApiResponse {
  readonly status: number
  readonly body: unknown
}

/**
 * HTTP/1.1 client of the daemon's Unix socket with a keep-alive pool (no token needed there).
 * Bodies are passed pre-serialized so the client's JSON work stays out of the measurement.
 */
export class SocketClient {
  readonly #socketPath: string
  readonly #agent: Agent

  constructor(socketPath: string, maxSockets: number) {
    this.#socketPath = socketPath
    this.#agent = new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets })
  }

  /** Sends one request; resolves with the status and the parsed JSON body. */
  send(method: string, path: string, body?: string): Promise<ApiResponse> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = { accept: 'application/json' }
      if (body !== undefined) {
        headers['content-type'] = 'application/json'
        headers['content-length'] = Buffer.byteLength(body)
      }
      const req = request({ socketPath: this.#socketPath, agent: this.#agent, method, path, headers }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.on('error', reject)
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          let parsed: unknown = text
          try {
            parsed = text.length > 0 ? JSON.parse(text) : undefined
          } catch {
            // not JSON: keep the text for the error message
          }
          resolve({ status: res.statusCode ?? 0, body: parsed })
        })
      })
      req.on('error', reject)
      req.end(body)
    })
  }

  /** Like {@link send}, but any status other than `expected` is an error. */
  async expect(method: string, path: string, body: string | undefined, expected = 200): Promise<unknown> {
    const res = await this.send(method, path, body)
    if (res.status !== expected) throw new Error(`${method} ${path}: HTTP ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`)
    return res.body
  }

  close(): void {
    this.#agent.destroy()
  }
}
