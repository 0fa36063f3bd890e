import { request, type IncomingMessage } from 'node:http'

/**
 * Follows one namespace's change feed of a daemon (`GET /v1/ns/:ns/changes` as a server-sent
 * event stream, over its Unix socket) and notes when each entity id arrived. The scale harness
 * measures propagation with it: a poll of every node every few ms took, at 48 nodes, more CPU
 * than the daemons it measured.
 */
export class ChangeWatch {
  /** performance.now() at which each id's first change event arrived. */
  readonly arrived = new Map<string, number>()
  readonly #waiters = new Set<() => void>()
  #response: IncomingMessage | undefined
  #closed = false

  private constructor() {}

  /** Opens the feed from its current end (`since=now`); resolves once the daemon answered. */
  static open(socketPath: string, ns: string): Promise<ChangeWatch> {
    const watch = new ChangeWatch()
    return new Promise((resolve, reject) => {
      const req = request({ socketPath, path: `/v1/ns/${encodeURIComponent(ns)}/changes?since=now`, headers: { accept: 'text/event-stream' } }, (res) => {
        if (res.statusCode !== 200) {
          res.resume()
          reject(new Error(`change feed answered ${res.statusCode}`))
          return
        }
        watch.#response = res
        res.setEncoding('utf8')
        let buffer = ''
        res.on('data', (chunk: string) => {
          buffer += chunk
          let end: number
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            watch.#event(buffer.slice(0, end))
            buffer = buffer.slice(end + 2)
          }
        })
        res.on('error', () => undefined)
        resolve(watch)
      })
      req.on('error', reject)
      req.end()
    })
  }

  #event(block: string): void {
    const data = block.split('\n').find((line) => line.startsWith('data: '))
    if (!data) return
    const { id } = JSON.parse(data.slice(6)) as { id: string }
    if (!this.arrived.has(id)) this.arrived.set(id, performance.now())
    for (const wake of this.#waiters) wake()
  }

  /** Resolves with the arrival time of `id` (at once when it has arrived), or undefined after `timeoutMs`. */
  until(id: string, timeoutMs: number): Promise<number | undefined> {
    const at = this.arrived.get(id)
    if (at !== undefined || this.#closed) return Promise.resolve(at)
    return new Promise((resolve) => {
      const done = (): void => {
        const t = this.arrived.get(id)
        if (t === undefined) return
        clearTimeout(timer)
        this.#waiters.delete(done)
        resolve(t)
      }
      const timer = setTimeout(() => {
        this.#waiters.delete(done)
        resolve(undefined)
      }, timeoutMs)
      this.#waiters.add(done)
    })
  }

  close(): void {
    this.#closed = true
    this.#response?.destroy()
  }
}
