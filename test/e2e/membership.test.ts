import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { joinArgs, peersOf, put, valueOf } from '../helpers/cluster.ts'
import { startDaemon, stopAllDaemons, writeConfig, type DaemonHandle } from '../helpers/daemon-process.ts'
import { makeTempDir, removeTempDirs } from '../helpers/temp-dir.ts'
import { waitFor } from '../helpers/wait-for.ts'

afterEach(async () => {
  await stopAllDaemons()
  await removeTempDirs()
})

const LOW = 2
const HIGH = 3
const NODES = 6

/** One gauge of `GET /metrics` (no labels). */
async function gauge(d: DaemonHandle, name: string): Promise<number> {
  const res = await d.sock('GET', '/metrics')
  const line = res.text.split('\n').find((l) => l.startsWith(`${name} `))
  if (line === undefined) throw new Error(`${name} missing from /metrics`)
  return Number(line.slice(name.length + 1))
}

async function startNode(args: string[] = [], dataDir?: string): Promise<DaemonHandle> {
  const dir = dataDir ?? (await makeTempDir('meshsync-membership-'))
  await writeConfig(dir, { p2p: { minConnections: LOW, maxConnections: HIGH } })
  return startDaemon({ dataDir: dir, args, readyTimeoutMs: 60_000 })
}

/** The connection graph among `nodes` (by /v1/peers), as a count of connected components. */
async function components(nodes: readonly DaemonHandle[]): Promise<number> {
  const ids = new Set(nodes.map((d) => d.info.peerId))
  const edges = new Map<string, Set<string>>([...ids].map((id) => [id, new Set<string>()]))
  for (const d of nodes) {
    for (const p of await peersOf(d)) {
      if (!p.connected || p.peerId === null || !ids.has(p.peerId)) continue
      edges.get(d.info.peerId)?.add(p.peerId)
      edges.get(p.peerId)?.add(d.info.peerId)
    }
  }
  const seen = new Set<string>()
  let count = 0
  for (const start of ids) {
    if (seen.has(start)) continue
    count++
    const stack = [start]
    seen.add(start)
    while (stack.length > 0) {
      for (const next of edges.get(stack.pop() as string) ?? []) {
        if (!seen.has(next)) {
          seen.add(next)
          stack.push(next)
        }
      }
    }
  }
  return count
}

describe('membership and a bounded-degree overlay (every node bootstrapped to node 0 only)', () => {
  it('every node learns every member, keeps its degree within the watermarks, and the cluster outlives node 0', { timeout: 420_000 }, async () => {
    const first = await startNode()
    const nodes = [first]
    for (let i = 1; i < NODES; i++) nodes.push(await startNode(joinArgs(first)))

    // Every member known everywhere: not a star around node 0.
    await waitFor(async () => (await Promise.all(nodes.map((d) => gauge(d, 'meshsync_members_known')))).every((n) => n === NODES - 1), {
      timeout: 60_000,
      interval: 250,
      message: `every node knowing ${NODES - 1} members`,
    })
    // Degree between the watermarks everywhere (node 0 had every node's first connection).
    const degrees = await waitFor(
      async () => {
        const d = await Promise.all(nodes.map((n) => gauge(n, 'meshsync_connected_peers')))
        return d.every((x) => x >= LOW && x <= HIGH) ? d : undefined
      },
      { timeout: 90_000, interval: 250, message: `every node with ${LOW}-${HIGH} connected peers` },
    )
    expect(Math.max(...degrees)).toBeLessThanOrEqual(HIGH)
    expect(Math.min(...degrees)).toBeGreaterThanOrEqual(LOW)

    // Node 0 dies: the others stay (or get) connected to each other, and a write on one reaches every other.
    first.kill('SIGKILL')
    await first.exited
    const survivors = nodes.slice(1)
    await waitFor(async () => (await components(survivors)) === 1, { timeout: 60_000, interval: 250, message: 'the survivors forming one connected overlay' })
    const writer = survivors[survivors.length - 1] as DaemonHandle
    await put(writer, 'mesh', 'after-node-0', { v: 1 })
    for (const d of survivors) {
      await waitFor(async () => (await valueOf(d, 'mesh', 'after-node-0'))?.v === 1, { timeout: 30_000, interval: 100, message: `the write reaching ${d.info.nodeId}` })
    }

    // A member restarted without its bootstrap address or peers.json finds the cluster from the
    // members its peer store kept.
    const restarted = survivors[0] as DaemonHandle
    await restarted.stop()
    await rm(join(restarted.dataDir, 'peers.json'), { force: true })
    await put(writer, 'mesh', 'while-down', { v: 2 })
    const again = await startNode([], restarted.dataDir)
    expect(await gauge(again, 'meshsync_members_known')).toBeGreaterThanOrEqual(NODES - 2)
    await waitFor(async () => (await valueOf(again, 'mesh', 'while-down'))?.v === 2, { timeout: 60_000, interval: 100, message: 'the restarted member catching up' })
  })
})
