import { request, type IncomingMessage } from 'node:http'
import { MeshsyncError } from '../../crdt/index.ts'

/** An API call that failed, with the API's code (or a transport code). */
export class ClientError extends MeshsyncError {
  readonly status: number
  constructor(code: string, message: string, status = 0, options?: { cause?: unknown }) {
    super(code, message, options)
    this.name = 'ClientError'
    this.status = status
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
    if ((res.statusCode ?? 500) >= 400) {
      const err = (parsed as { error?: { code?: string; message?: string } } | undefined)?.error
      throw new ClientError(err?.code ?? 'HTTP_ERROR', err?.message ?? `HTTP ${res.statusCode}`, res.statusCode ?? 0)
    }
    return parsed as T
  }

  /** Opens a server-sent-events stream; calls `onEvent` for each event until the stream ends. */
  async stream(path: string, onEvent: (event: SseEvent) => void, signal?: AbortSignal): Promise<void> {
    const res = await this.#send('GET', path, undefined, { accept: 'text/event-stream' }, signal)
    if ((res.statusCode ?? 500) >= 400) {
      const parsed = JSON.parse(await readAll(res)) as { error?: { code?: string; message?: string } }
      throw new ClientError(parsed.error?.code ?? 'HTTP_ERROR', parsed.error?.message ?? `HTTP ${res.statusCode}`, res.statusCode ?? 0)
    }
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
          reject(new ClientError('DAEMON_NOT_RUNNING', `no daemon is listening on ${this.socketPath} (start one with "meshsync start")`, 0, { cause }))
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
