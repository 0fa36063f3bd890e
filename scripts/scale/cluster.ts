import { readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BenchDaemon } from '../bench/daemon.ts'
import { SocketClient } from '../bench/socket-client.ts'

/** One daemon of a scale cluster, with a keep-alive client of its Unix socket. */
export interface ScaleNode {
  readonly index: number
  readonly daemon: BenchDaemon
  readonly client: SocketClient
  alive: boolean
}

/** `p2p` settings written to every node's config file (e.g. the overlay watermarks). */
export type P2pSettings = Readonly<Record<string, unknown>>

/**
 * Starts `n` daemons on loopback, mDNS off: node 0 first (it makes the cluster key), then every
 * other node with a copy of the key and node 0's address as its only bootstrap address (an edge
 * cluster where mDNS does not reach; docs/sync-protocol.md, Membership and the overlay). Later nodes start `parallel` at a
 * time. The only place the scale harness launches daemons.
 */
export async function startScaleCluster(n: number, options: { baseDir: string; parallel?: number; p2p?: P2pSettings }): Promise<ScaleNode[]> {
  const nodes: ScaleNode[] = []
  const configFile = join(options.baseDir, 'scale-config.json')
  await writeFile(configFile, JSON.stringify({ p2p: options.p2p ?? {} }))
  const configArgs = options.p2p && Object.keys(options.p2p).length > 0 ? ['--config', configFile] : []
  const start = async (index: number, args: string[]): Promise<ScaleNode> => {
    const daemon = await BenchDaemon.start({ baseDir: options.baseDir, args: [...configArgs, ...args], readyTimeoutMs: 120_000 })
    return { index, daemon, client: new SocketClient(daemon.socket, 2), alive: true }
  }
  try {
    const first = await start(0, [])
    nodes.push(first)
    const seed = first.daemon.info.listen[0] as string
    const keyArgs = ['--cluster-key', join(first.daemon.dataDir, 'cluster.key'), '--bootstrap', seed]
    const parallel = options.parallel ?? 4
    for (let i = 1; i < n; i += parallel) {
      const batch = []
      for (let j = i; j < Math.min(n, i + parallel); j++) batch.push(start(j, keyArgs))
      nodes.push(...(await Promise.all(batch)))
    }
    nodes.sort((a, b) => a.index - b.index)
    return nodes
  } catch (error) {
    await stopScaleCluster(nodes)
    throw error
  }
}

/** Stops every daemon still running (SIGTERM, SIGKILL after a timeout) and removes the data dirs. */
export async function stopScaleCluster(nodes: readonly ScaleNode[]): Promise<void> {
  for (const node of nodes) node.client.close()
  await Promise.all(nodes.map((node) => node.daemon.stop({ timeoutMs: 15_000 })))
}

/** Kills a node at once (SIGKILL: no goodbye to its peers), keeping nothing of it. */
export async function killNode(node: ScaleNode): Promise<void> {
  node.alive = false
  node.client.close()
  process.kill(node.daemon.pid, 'SIGKILL')
  await node.daemon.stop({ timeoutMs: 5000 })
}

/** Resident set size of a process in bytes (/proc); null where it cannot be read. */
export function rssBytes(pid: number): number | null {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match ? Number(match[1]) * 1024 : null
  } catch {
    return null
  }
}
