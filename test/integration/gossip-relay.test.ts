import { describe, expect, it } from 'vitest'
import { newClusterKey, startMeshNode, type MeshNode, stoppedAfterEach } from '../helpers/mesh-node.ts'
import { waitFor } from '../helpers/wait-for.ts'

const { nodes } = stoppedAfterEach()

/** Three nodes of one cluster, not connected yet (stopped after the test). */
async function startThree(): Promise<[MeshNode, MeshNode, MeshNode]> {
  const key = newClusterKey()
  const three = (await Promise.all([0, 1, 2].map(() => startMeshNode({ clusterKey: key })))) as [MeshNode, MeshNode, MeshNode]
  nodes.push(...three)
  return three
}

/** Waits until `node` knows that `origin`'s gossip reaches exactly `reached` (node ids). */
async function knowsLinks(node: MeshNode, origin: MeshNode, reached: MeshNode[]): Promise<void> {
  const want = reached.map((n) => n.transport.nodeId).sort()
  await waitFor(() => JSON.stringify([...(node.transport.reachOf(origin.transport.nodeId) ?? [])].sort()) === JSON.stringify(want), {
    message: `links of ${origin.transport.nodeId} on ${node.transport.nodeId}`,
  })
}

/**
 * Only a change's origin publishes it. A receiver passes a change on to its mesh only when some
 * mesh peer is not reached by the origin itself (anti-entropy is every 60 s here: these writes
 * travel by gossip alone).
 */
describe('gossip relay', () => {
  it('in a full mesh of 3, no receiver passes the changes on, and all arrive', { timeout: 30_000 }, async () => {
    const [a, b, c] = await startThree()
    await a.transport.dial(b.addr())
    await a.transport.dial(c.addr())
    await b.transport.dial(c.addr())
    await knowsLinks(b, a, [b, c])
    await knowsLinks(c, a, [b, c])
    // Until gossipsub grafts B and C into each other's mesh, neither has anyone to pass A's changes to.
    await waitFor(() => [b, c].every((n) => n.transport.gossipMeshPeers().length === 2), { message: 'full gossip meshes' })
    const before = [b, c].map((n) => ({ ...n.replicator.relayStats }))
    for (let i = 0; i < 20; i++) await a.store.write([{ op: 'put', ns: 'n', id: `e${i}`, value: { i } }])
    await waitFor(() => [b, c].every((n) => (n.store.versionVector[a.transport.nodeId] ?? 0) >= 20), { message: "A's 20 writes on B and C" })
    for (const [i, n] of [b, c].entries()) {
      expect(n.replicator.relayStats.forwarded - (before[i]?.forwarded ?? 0)).toBe(0)
      expect(n.replicator.relayStats.withheld - (before[i]?.withheld ?? 0)).toBeGreaterThan(0)
    }
    expect(b.replicator.stats.sessions + c.replicator.stats.sessions).toBeLessThan(10) // the connect sessions only
  })

  it('in a line A-B-C, B passes A’s changes on to C, which A does not reach', { timeout: 30_000 }, async () => {
    // A and C accept only B, so the overlay (which would dial C from A once A learns of it) keeps the line.
    const key = newClusterKey()
    const b = await startMeshNode({ clusterKey: key })
    nodes.push(b)
    const bId = b.transport.peerId.toString()
    const [a, c] = await Promise.all([0, 1].map(() => startMeshNode({ clusterKey: key, allowPeers: [bId] })))
    nodes.push(a!, c!)
    if (!a || !c) throw new Error('nodes did not start')
    await a.transport.dial(b.addr())
    await b.transport.dial(c.addr())
    await knowsLinks(b, a, [b])
    await waitFor(() => b.transport.gossipPeers().length === 2 && c.transport.gossipPeers().length === 1, { message: 'gossip mesh' })
    // The connect sessions of A-B and B-C are over before the writes, so any session after them is counted.
    await waitFor(() => c.replicator.stats.sessions >= 1 && b.replicator.stats.sessions >= 2, { message: 'connect sessions' })
    await Promise.all([a, b, c].map((n) => n.replicator.idle()))
    const sessions = c.replicator.stats.sessions
    for (let i = 0; i < 5; i++) await a.store.write([{ op: 'put', ns: 'n', id: `e${i}`, value: { i } }])
    await waitFor(() => (c.store.versionVector[a.transport.nodeId] ?? 0) >= 5, { timeout: 5_000, message: "A's writes on C" })
    expect(b.replicator.relayStats.forwarded).toBeGreaterThan(0)
    expect(c.replicator.stats.sessions).toBe(sessions) // by gossip, not by a session
  })
})
