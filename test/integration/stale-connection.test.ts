import { afterEach, describe, expect, it } from 'vitest'
import { SUPERSEDE_AFTER_MS } from '../../transport/mesh-transport.ts'
import { BlackholeProxy } from '../helpers/blackhole-proxy.ts'
import { newClusterKey, startMeshNode, stoppedAfterEach } from '../helpers/mesh-node.ts'
import { waitFor } from '../helpers/wait-for.ts'

const { nodes } = stoppedAfterEach()
let proxy: BlackholeProxy | undefined

afterEach(async () => {
  await proxy?.close()
  proxy = undefined
})

describe('a connection the peer gave up on', () => {
  it('is closed when the peer connects again, and changes flow over the new connection', async () => {
    const clusterKey = newClusterKey()
    const a = await startMeshNode({ clusterKey })
    const b = await startMeshNode({ clusterKey })
    nodes.push(a, b)
    const aId = a.transport.peerId.toString()
    const bId = b.transport.peerId.toString()
    const bPort = Number(b.addr().split('/')[4])
    proxy = await BlackholeProxy.start(bPort)
    const viaProxy = `/ip4/127.0.0.1/tcp/${proxy.port}/p2p/${bId}`

    await a.transport.dial(viaProxy)
    await waitFor(() => b.transport.gossipPeers().includes(aId) && a.transport.gossipPeers().includes(bId), { message: 'gossip both ways' })
    await b.store.write([{ op: 'put', ns: 'ns', id: 'before', value: { v: 1 } }])
    await waitFor(async () => (await a.store.get('ns', 'before')).id === 'before', { message: 'the first write on A' })
    const [old] = b.transport.connectionsTo(aId)
    expect(b.transport.connectionsTo(aId)).toHaveLength(1)
    // Old enough to be told apart from a connection of a simultaneous dial.
    await new Promise((resolve) => setTimeout(resolve, SUPERSEDE_AFTER_MS + 200))

    // A partition: A gives up on the connection; its close never reaches B.
    proxy.blackholeOpen()
    await a.transport.hangUp(bId)
    expect(b.transport.connectionsTo(aId).map((c) => c.status)).toEqual(['open'])

    // The network is back and A dials again: B drops the connection A gave up on.
    await a.transport.dial(viaProxy)
    const fresh = await waitFor(() => b.transport.connectionsTo(aId).find((c) => c.id !== old?.id), { message: "A's new connection on B" })
    expect(b.transport.connectionsTo(aId).find((c) => c.id === old?.id)?.status ?? 'gone').not.toBe('open')

    // B's writes reach A over the new connection.
    await b.store.write([{ op: 'put', ns: 'ns', id: 'after', value: { v: 2 } }])
    await waitFor(async () => (await a.store.get('ns', 'after')).id === 'after', { timeout: 20_000, message: 'the write after the heal on A' })
    expect(b.transport.connectionsTo(aId).map((c) => c.id)).toEqual([fresh.id])
  }, 40_000)

  it('a write the origin gossips into a connection that looks open but passes nothing reaches the node from a peer that withheld it', async () => {
    const clusterKey = newClusterKey()
    const a = await startMeshNode({ clusterKey })
    const b = await startMeshNode({ clusterKey })
    const c = await startMeshNode({ clusterKey })
    nodes.push(a, b, c)
    const [aId, bId, cId] = [a, b, c].map((n) => n.transport.peerId.toString()) as [string, string, string]
    proxy = await BlackholeProxy.start(Number(c.addr().split('/')[4]))
    await a.transport.dial(b.addr())
    await b.transport.dial(c.addr())
    await a.transport.dial(`/ip4/127.0.0.1/tcp/${proxy.port}/p2p/${cId}`)
    await waitFor(() => a.transport.gossipPeers().includes(cId) && c.transport.gossipPeers().includes(aId) && c.transport.gossipPeers().includes(bId), { message: 'gossip mesh' })
    // B knows that A's gossip reaches C directly, so it does not pass A's changes on to C.
    await waitFor(() => b.transport.reachOf(a.transport.nodeId)?.has(c.transport.nodeId), { message: "A's links on B" })
    await a.store.write([{ op: 'put', ns: 'ns', id: 'warm', value: { v: 0 } }])
    await waitFor(async () => (await c.store.get('ns', 'warm')).id === 'warm', { message: 'the first write on C' })

    // A partition between A and C that neither has noticed: their connection passes nothing.
    proxy.blackholeOpen()
    await a.store.write([{ op: 'put', ns: 'ns', id: 'lost-gossip', value: { v: 1 } }])
    await a.store.write([{ op: 'put', ns: 'ns', id: 'also-lost', value: { v: 2 } }])
    // B withheld both and told C their heads; C lacks them and pulls them from B. A session with
    // A would wait out its stream timeout, and the connection its ping timeout.
    const seen = await waitFor(async () => (await c.store.get('ns', 'lost-gossip')).id === 'lost-gossip' && (await c.store.get('ns', 'also-lost')).id === 'also-lost', { timeout: 6_000, message: 'both writes on C' })
    expect(seen).toBe(true)
    expect(b.replicator.relayStats.withheld).toBeGreaterThan(0)
    expect(c.replicator.stats.headsBehind).toBeGreaterThan(0)
    expect(c.transport.connectionsTo(aId).map((x) => x.status)).toContain('open')
  }, 40_000)
})
