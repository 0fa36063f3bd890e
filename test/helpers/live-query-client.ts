import { request, type IncomingMessage } from 'node:http'
import { SseParser, type SseEvent } from '../../daemon/cli/client.ts'
import { waitFor } from './wait-for.ts'

/** An entity as a live query event carries it. */
export interface LiveEntity {
  readonly ns: string
  readonly id: string
  readonly value: Record<string, unknown>
  readonly version: Record<string, number>
  readonly updatedAt: string
  readonly conflicts?: unknown[]
}

/** One live query event, parsed. */
export interface LiveEventSeen {
  readonly type: string
  readonly id?: string
  readonly data: Record<string, unknown>
}

/** A live query subscription over HTTP (`POST /v1/ns/:ns/query`, `Accept: text/event-stream`). */
export interface LiveSubscription {
  readonly status: number
  /** The error body when the answer was not a stream. */
  readonly error?: { code: string; message: string }
  readonly events: LiveEventSeen[]
  /** The result as a subscriber following the rules holds it: enter/change put, leave removes, reset clears. */
  readonly result: Map<string, LiveEntity>
  /** The id of the last event that had one (what `Last-Event-ID` resumes from). */
  lastId(): string | undefined
  /** Resolves once the server ended the stream. */
  readonly ended: Promise<void>
  /** Waits until `n` events have come; resolves with them. */
  waitEvents(n: number): Promise<LiveEventSeen[]>
  /** Stops reading (the socket's buffers fill), and reads again. */
  pause(): void
  resume(): void
  close(): void
}

/** Opens a live query; resolves once the answer's headers came (a 4xx answer resolves with its error). */
export function subscribe(port: number, ns: string, body: unknown, headers: Record<string, string> = {}, held?: ReadonlyMap<string, LiveEntity>): Promise<LiveSubscription> {
  const payload = Buffer.from(JSON.stringify(body))
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: `/v1/ns/${encodeURIComponent(ns)}/query`,
        headers: { accept: 'text/event-stream', 'content-type': 'application/json', 'content-length': String(payload.length), ...headers },
      },
      (res: IncomingMessage) => {
        const events: LiveEventSeen[] = []
        // A resumed subscriber starts from what it held.
        const result = new Map<string, LiveEntity>(held)
        let last: string | undefined
        res.setEncoding('utf8')
        const ended = new Promise<void>((done) => {
          res.once('end', done)
          res.once('close', done)
          res.once('error', () => done())
        })
        const sub = (error?: { code: string; message: string }): LiveSubscription => ({
          status: res.statusCode ?? 0,
          ...(error && { error }),
          events,
          result,
          lastId: () => last,
          ended,
          waitEvents: async (n) => {
            await waitFor(() => events.length >= n, { timeout: 10_000, message: `${n} live query events (have ${events.length}: ${JSON.stringify(events.map((e) => [e.type, e.data.id]))})` })
            return events.slice(0, n)
          },
          pause: () => res.pause(),
          resume: () => res.resume(),
          close: () => req.destroy(),
        })
        if (res.statusCode !== 200) {
          let text = ''
          res.on('data', (c: string) => (text += c))
          res.on('end', () => resolve(sub((JSON.parse(text) as { error: { code: string; message: string } }).error)))
          return
        }
        const parser = new SseParser((e: SseEvent) => {
          const data = JSON.parse(e.data) as Record<string, unknown>
          const type = e.event ?? 'message'
          if (e.id !== undefined) last = e.id
          events.push({ type, data, ...(e.id !== undefined && { id: e.id }) })
          if (type === 'enter' || type === 'change') result.set(data.id as string, data as unknown as LiveEntity)
          else if (type === 'leave') result.delete(data.id as string)
          else if (type === 'reset') result.clear()
        })
        res.on('data', (chunk: string) => parser.push(chunk))
        resolve(sub())
      },
    )
    req.on('error', reject)
    req.end(payload)
  })
}
