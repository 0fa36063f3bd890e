import { createServer, connect, type Server, type Socket } from 'node:net'

/**
 * A TCP proxy on loopback that can turn its open connections into a black hole: from
 * {@link blackholeOpen} on, nothing more passes through them either way, not even a close, as
 * when a partition drops a connection's packets and a peer's reset is lost on the way. Later
 * connections pass through normally (the partition healed for new ones).
 */
export class BlackholeProxy {
  readonly #server: Server
  readonly #pairs = new Set<{ client: Socket; upstream: Socket; dead: boolean }>()

  private constructor(server: Server) {
    this.#server = server
  }

  /** Listens on 127.0.0.1 (a free port) and forwards to `127.0.0.1:targetPort`. */
  static async start(targetPort: number): Promise<BlackholeProxy> {
    const server = createServer()
    const proxy = new BlackholeProxy(server)
    server.on('connection', (client) => proxy.#forward(client, targetPort))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return proxy
  }

  get port(): number {
    const address = this.#server.address()
    if (address === null || typeof address === 'string') throw new Error('proxy not listening')
    return address.port
  }

  /** Every connection open now stops passing anything, in both directions, for good. */
  blackholeOpen(): void {
    for (const pair of this.#pairs) pair.dead = true
  }

  async close(): Promise<void> {
    for (const { client, upstream } of this.#pairs) {
      client.destroy()
      upstream.destroy()
    }
    this.#pairs.clear()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }

  #forward(client: Socket, targetPort: number): void {
    const upstream = connect(targetPort, '127.0.0.1')
    const pair = { client, upstream, dead: false }
    this.#pairs.add(pair)
    const pipe = (from: Socket, to: Socket): void => {
      from.on('data', (chunk) => {
        if (!pair.dead) to.write(chunk)
      })
      from.on('end', () => {
        if (!pair.dead) to.end()
      })
      from.on('error', () => {
        if (!pair.dead) to.destroy()
      })
      from.on('close', () => {
        if (!pair.dead) to.destroy()
      })
    }
    pipe(client, upstream)
    pipe(upstream, client)
  }
}
