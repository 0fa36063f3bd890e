import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { BenchDaemon } from './daemon.ts'
import { SocketClient } from './socket-client.ts'

/** Node status as far as the cluster benchmarks read it (`GET /v1/status`). */
export interface NodeStatus {
  readonly versionVector: Readonly<Record<string, number>>
  readonly namespaces: Readonly<Record<string, number>>
  readonly peers: number
}

/** One daemon of a cluster, with a keep-alive client of its Unix socket. */
export interface ClusterNode {
  readonly daemon: BenchDaemon
  readonly client: SocketClient
}

export interface ClusterOptions {
  /** Parent of the daemons' temporary data dirs. */
  readonly baseDir: string
  /** Keep-alive sockets per node client. */
  readonly clientSockets?: number
  /** When set, every daemon runs under `--cpu-prof`, writing into `<cpuProfDir>/node-<i>`. */
  readonly cpuProfDir?: string
}

/**
 * `n` meshsync daemons in a full mesh on loopback: the first makes the cluster key, every later one
 * gets a copy (`--cluster-key`) and bootstraps to all the earlier ones (`--bootstrap`), so every
 * pair has a direct connection. {@link stop} ends them all and removes their data dirs.
 */
export class BenchCluster {
  readonly nodes: readonly ClusterNode[]

  private constructor(nodes: readonly ClusterNode[]) {
    this.nodes = nodes
  }

  static async start(n: number, options: ClusterOptions): Promise<BenchCluster> {
    const nodes: ClusterNode[] = []
    try {
      for (let i = 0; i < n; i++) {
        const first = nodes[0]?.daemon
        const args = ['--listen', '/ip4/127.0.0.1/tcp/0']
        if (first) args.push('--cluster-key', join(first.dataDir, 'cluster.key'), '--bootstrap', ...nodes.flatMap((node) => node.daemon.info.listen.slice(0, 1)))
        let nodeFlags: string[] = []
        if (options.cpuProfDir !== undefined) {
          const dir = join(options.cpuProfDir, `node-${i}`)
          await mkdir(dir, { recursive: true })
          nodeFlags = ['--cpu-prof', '--cpu-prof-dir', dir]
        }
        const daemon = await BenchDaemon.start({ baseDir: options.baseDir, args, nodeFlags })
        nodes.push({ daemon, client: new SocketClient(daemon.socket, options.clientSockets ?? 4) })
      }
      const cluster = new BenchCluster(nodes)
      await cluster.waitForMesh()
      return cluster
    } catch (error) {
      await new BenchCluster(nodes).stop()
      throw error
    }
  }

  /** Waits until every node has a connection to every other node. */
  async waitForMesh(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    const want = this.nodes.length - 1
    for (;;) {
      const counts = await Promise.all(this.nodes.map(async (node) => (await this.status(node)).peers))
      if (counts.every((c) => c >= want)) return
      if (Date.now() > deadline) throw new Error(`cluster not meshed after ${timeoutMs} ms: connected peers per node ${counts.join(', ')} (want ${want})`)
      await sleep(50)
    }
  }

  async status(node: ClusterNode): Promise<NodeStatus> {
    return (await node.client.expect('GET', '/v1/status', undefined)) as NodeStatus
  }

  /** Polls every node's version vector until each covers `expected`; resolves with performance.now() of the poll that saw it. */
  async waitForVector(expected: Readonly<Record<string, number>>, options: { timeoutMs?: number; intervalMs?: number } = {}): Promise<number> {
    const deadline = performance.now() + (options.timeoutMs ?? 120_000)
    const pending = new Set(this.nodes)
    for (;;) {
      await Promise.all(
        [...pending].map(async (node) => {
          const vv = (await this.status(node)).versionVector
          if (Object.entries(expected).every(([origin, seq]) => (vv[origin] ?? 0) >= seq)) pending.delete(node)
        }),
      )
      const now = performance.now()
      if (pending.size === 0) return now
      if (now > deadline) {
        const behind = await Promise.all([...pending].map(async (node) => `${node.daemon.info.nodeId}: ${JSON.stringify((await this.status(node)).versionVector)}`))
        throw new Error(`nodes did not converge to ${JSON.stringify(expected)} in time: ${behind.join('; ')}`)
      }
      await sleep(options.intervalMs ?? 10)
    }
  }

  /** Current version vectors of every node merged (max per origin): what convergence means. */
  async mergedVector(): Promise<Record<string, number>> {
    const merged: Record<string, number> = {}
    for (const node of this.nodes) {
      for (const [origin, seq] of Object.entries((await this.status(node)).versionVector)) merged[origin] = Math.max(merged[origin] ?? 0, seq)
    }
    return merged
  }

  /** Stops every daemon (SIGTERM, SIGKILL after a timeout) and removes the data dirs; resolves with their exit codes. */
  async stop(): Promise<(number | null)[]> {
    for (const node of this.nodes) node.client.close()
    return Promise.all(this.nodes.map((node) => node.daemon.stop({ timeoutMs: 15_000 })))
  }
}

/** Starts a cluster, runs `fn`, and stops the cluster whatever happens; a non-zero exit is an error. */
export async function withCluster<T>(n: number, options: ClusterOptions, fn: (cluster: BenchCluster) => Promise<T>): Promise<T> {
  const cluster = await BenchCluster.start(n, options)
  let result: T
  try {
    result = await fn(cluster)
  } catch (error) {
    await cluster.stop()
    throw error
  }
  const codes = await cluster.stop()
  const bad = codes.map((code, i) => [i, code] as const).filter(([, code]) => code !== 0)
  if (bad.length > 0) throw new Error(`daemon(s) exited non-zero on SIGTERM: ${bad.map(([i, code]) => `node ${i}: ${code}\n${cluster.nodes[i]?.daemon.output ?? ''}`).join('\n')}`)
  return result
}
