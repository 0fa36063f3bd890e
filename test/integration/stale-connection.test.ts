import { afterEach, describe, expect, it } from 'vitest'
import { SUPERSEDE_AFTER_MS } from '../../transport/mesh-transport.ts'
import { BlackholeProxy } from '../helpers/blackhole-proxy.ts'
import { newClusterKey, startMeshNode, type MeshNode } from '../helpers/mesh-node.ts'
import { waitFor } from '../helpers/wait-for.ts'

let nodes: MeshNode[] = []
let proxy: BlackholeProxy | undefined

afterEach(async () => {
  await proxy?.close()
  proxy = undefined
  await Promise.all(nodes.map((n) => n.stop()))
  nodes = []
})

describe('a connection the peer gave up on', () => {
  it('is closed when the peer connects again, and changes flow over the new connection', async () => {
    const clusterKey = newClusterKey()
    const a = await startMeshNode({ clusterKey })
    const b = await startMeshNode({ clusterKey })
    nodes = [a, b]
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
})
