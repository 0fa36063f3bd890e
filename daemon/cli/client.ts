import { request, type IncomingMessage } from 'node:http'
import { MeshsyncError } from '../../crdt/index.ts'
import type { ErrorCode, ErrorCodes } from '../errors.ts'

/** An API call that failed, with the API's code (or one of the client's own). */
export class ClientError extends MeshsyncError {
  /** The HTTP status; 0 when no answer came. */
  readonly status: number

  /**
   * `code`: a code of ERROR_CODES (daemon/errors.ts). An answer's code is kept as it came, so
   * that a daemon of another version can name a code this client does not know.
   */
  private constructor(code: string, message: string, status: number, options?: { cause?: unknown }) {
    super(code, message, options)
    this.name = 'ClientError'
    this.status = status
  }

  /** A failure of the client itself (no daemon to ask). */
  static local(code: ErrorCodes<'DAEMON_NOT_RUNNING'>, message: string, options?: { cause?: unknown }): ClientError {
    return new ClientError(code, message, 0, options)
  }

  /** An error answer: its `{"error": {"code", "message"}}` body, or `HTTP_ERROR` without one. */
  static fromResponse(status: number, body: unknown): ClientError {
    const error = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error
    const missing: ErrorCode = 'HTTP_ERROR'
    return new ClientError(
      typeof error?.code === 'string' ? error.code : missing,
      typeof error?.message === 'string' ? error.message : `HTTP ${status}`,
      status,
    )
  }
}

/** A client of the local API over the daemon's Unix socket (no token needed). */
export class SocketClient {
  readonly socketPath: string

  constructor(socketPath: string) {
    this.socketPath = socketPath
  }

  /** Sends a JSON request; resolves with the parsed JSON answer or throws {@link ClientError}. */
  async call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.#send(method, path, body, {})
    const text = await readAll(res)
    const parsed = text.length > 0 ? (JSON.parse(text) as unknown) : undefined
    if ((res.statusCode ?? 500) >= 400) throw ClientError.fromResponse(res.statusCode ?? 0, parsed)
    return parsed as T
  }

  /**
   * Opens a server-sent-events stream (a GET, or a POST of `options.body`); calls `onEvent` for
   * each event until the stream ends.
   */
  async stream(path: string, onEvent: (event: SseEvent) => void, signal?: AbortSignal, options: { body?: unknown; headers?: Record<string, string> } = {}): Promise<void> {
    const method = options.body === undefined ? 'GET' : 'POST'
    const res = await this.#send(method, path, options.body, { ...options.headers, accept: 'text/event-stream' }, signal)
    if ((res.statusCode ?? 500) >= 400) throw ClientError.fromResponse(res.statusCode ?? 0, JSON.parse(await readAll(res)))
    res.setEncoding('utf8')
    const parser = new SseParser(onEvent)
    for await (const chunk of res) parser.push(chunk as string)
  }

  #send(method: string, path: string, body: unknown, headers: Record<string, string>, signal?: AbortSignal) {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body))
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socketPath,
          method,
          path,
          headers: { ...headers, ...(payload && { 'content-type': 'application/json', 'content-length': String(payload.length) }) },
          ...(signal && { signal }),
        },
        resolve,
      )
      req.on('error', (cause: NodeJS.ErrnoException) => {
        if (cause.code === 'ENOENT' || cause.code === 'ECONNREFUSED') {
          reject(ClientError.local('DAEMON_NOT_RUNNING', `no daemon is listening on ${this.socketPath} (start one with "meshsync start")`, { cause }))
        } else reject(cause)
      })
      req.end(payload)
    })
  }
}

/** One server-sent event. */
export interface SseEvent {
  id?: string
  event?: string
  data: string
}

/** Splits a text/event-stream into events as chunks arrive (comments and empty events skipped). */
export class SseParser {
  readonly #onEvent: (event: SseEvent) => void
  #buffer = ''

  constructor(onEvent: (event: SseEvent) => void) {
    this.#onEvent = onEvent
  }

  push(chunk: string): void {
    this.#buffer += chunk
    let end: number
    while ((end = this.#buffer.indexOf('\n\n')) >= 0) {
      const block = this.#buffer.slice(0, end)
      this.#buffer = this.#buffer.slice(end + 2)
      const event: SseEvent = { data: '' }
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue
        const colon = line.indexOf(':')
        const field = colon < 0 ? line : line.slice(0, colon)
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
        if (field === 'data') event.data += value
        else if (field === 'id') event.id = value
        else if (field === 'event') event.event = value
      }
      if (event.data !== '') this.#onEvent(event)
    }
  }
}

async function readAll(res: AsyncIterable<unknown>): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of res) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

/** One path segment of an API URL (a namespace, an id, an index name), percent-encoded. */
export function enc(segment: string): string {
  return encodeURIComponent(segment)
}

/** Prints one JSON value on a line (the CLI's `--json` output). */
export function print(value: unknown): void {
  console.log(JSON.stringify(value))
}
