import { request, type ClientRequest, type IncomingMessage } from 'node:http'
import { performance } from 'node:perf_hooks'

/** One event of the change feed: `{id, op, version, value}` as the daemon sends it. */
export interface FeedChange {
  readonly id: string
  readonly op: string
  readonly value?: unknown
}

/**
 * A live change feed of one namespace of a daemon (`GET /v1/ns/:ns/changes?since=now`,
 * `Accept: text/event-stream`, over the Unix socket). Each change is handed over with the
 * performance.now() at which its bytes arrived (taken before parsing), i.e. when the change became
 * visible to a client of that node.
 */
export class ChangeFeed {
  readonly #req: ClientRequest
  readonly #res: IncomingMessage
  #closed = false

  private constructor(req: ClientRequest, res: IncomingMessage) {
    this.#req = req
    this.#res = res
  }

  /** Opens the feed; resolves once the daemon has answered and sent the feed's opening comment. */
  static open(socketPath: string, ns: string, onChange: (change: FeedChange, at: number) => void, onError?: (error: Error) => void): Promise<ChangeFeed> {
    return new Promise((resolve, reject) => {
      const req = request(
        { socketPath, method: 'GET', path: `/v1/ns/${encodeURIComponent(ns)}/changes?since=now`, headers: { accept: 'text/event-stream' } },
        (res) => {
          if (res.statusCode !== 200) {
            reject(new Error(`change feed of ${ns}: HTTP ${res.statusCode}`))
            res.resume()
            return
          }
          const feed = new ChangeFeed(req, res)
          let buffer = ''
          let opened = false
          res.setEncoding('utf8')
          res.on('data', (chunk: string) => {
            const at = performance.now()
            buffer += chunk
            let end: number
            while ((end = buffer.indexOf('\n\n')) >= 0) {
              const block = buffer.slice(0, end)
              buffer = buffer.slice(end + 2)
              if (!opened && block.startsWith(':')) {
                opened = true
                resolve(feed)
                continue
              }
              let event = 'message'
              let data = ''
              for (const line of block.split('\n')) {
                if (line.startsWith('event:')) event = line.slice(6).trim()
                else if (line.startsWith('data:')) data += line.slice(5).trimStart()
              }
              if (event !== 'change' || data === '') continue
              try {
                onChange(JSON.parse(data) as FeedChange, at)
              } catch (error) {
                onError?.(error instanceof Error ? error : new Error(String(error)))
              }
            }
          })
          res.on('error', (error) => {
            if (!feed.#closed) onError?.(error)
          })
          res.on('end', () => {
            if (!feed.#closed) onError?.(new Error(`change feed of ${ns} ended`))
          })
        },
      )
      req.on('error', (error) => {
        reject(error)
      })
      req.end()
    })
  }

  close(): void {
    this.#closed = true
    this.#res.destroy()
    this.#req.destroy()
  }
}
