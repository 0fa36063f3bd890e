import { Agent, request } from 'node:http'

/** How a request ended: an answer, a refusal before anything was sent, or unknown. */
export type CallOutcome =
  | { readonly kind: 'answer'; readonly status: number; readonly json: unknown; readonly text: string }
  /** Nothing reached the daemon (no socket, connection refused): the operation did not happen. */
  | { readonly kind: 'refused'; readonly error: string }
  /** Sent, but no answer (connection reset, timeout): the operation may or may not have happened. */
  | { readonly kind: 'indeterminate'; readonly error: string }

const NOT_SENT = new Set(['ENOENT', 'ECONNREFUSED', 'EACCES'])

/** A client of one daemon's local API over its Unix socket (no token needed). */
export class SocketApi {
  readonly socketPath: string
  readonly #agent = new Agent({ keepAlive: true, maxSockets: 16 })

  constructor(socketPath: string) {
    this.socketPath = socketPath
  }

  call(method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<CallOutcome> {
    const payload = body === undefined ? undefined : Buffer.from(typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body))
    return this.callRaw(method, path, payload, 'application/json', timeoutMs)
  }

  /** A request with exactly these body bytes and content type (for fuzzing). */
  callRaw(method: string, path: string, body: string | Uint8Array | undefined, contentType = 'application/json', timeoutMs = 30_000): Promise<CallOutcome> {
    const payload = body === undefined ? undefined : Buffer.from(body)
    return new Promise((resolve) => {
      let sent = false
      let done = false
      const finish = (outcome: CallOutcome): void => {
        if (done) return
        done = true
        clearTimeout(timer)
        resolve(outcome)
      }
      const req = request(
        {
          socketPath: this.socketPath,
          agent: this.#agent,
          method,
          path,
          headers: payload ? { 'content-type': contentType, 'content-length': String(payload.length) } : {},
        },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('error', (e) => finish({ kind: 'indeterminate', error: e.message }))
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8')
            let json: unknown
            try {
              json = text === '' ? undefined : JSON.parse(text)
            } catch {
              json = undefined
            }
            finish({ kind: 'answer', status: res.statusCode ?? 0, json, text })
          })
        },
      )
      const timer = setTimeout(() => {
        req.destroy(new Error(`timeout after ${timeoutMs} ms`))
      }, timeoutMs)
      req.on('socket', (socket) => {
        if (!socket.connecting) sent = true
        else socket.once('connect', () => (sent = true))
      })
      req.on('error', (e: NodeJS.ErrnoException) => {
        const notSent = !sent && e.code !== undefined && NOT_SENT.has(e.code)
        finish(notSent ? { kind: 'refused', error: e.code ?? e.message } : { kind: 'indeterminate', error: e.code ?? e.message })
      })
      req.end(payload)
    })
  }

  /** A 200 answer's body; throws on anything else. */
  async get<T>(path: string, timeoutMs = 30_000): Promise<T> {
    const out = await this.call('GET', path, undefined, timeoutMs)
    if (out.kind !== 'answer') throw new Error(`GET ${path}: ${out.kind} (${out.error})`)
    if (out.status !== 200) throw new Error(`GET ${path}: ${out.status} ${out.text.slice(0, 200)}`)
    return out.json as T
  }

  close(): void {
    this.#agent.destroy()
  }
}
