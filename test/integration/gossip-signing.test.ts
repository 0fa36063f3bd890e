import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import { MemoryKvStore } from '../../daemon/storage/index.ts'
import { EntityStore } from '../../daemon/store/entity-store.ts'
import { CHANGES_TOPIC, encodeGossip, GOSSIP_CHANGES, SIGNED_CHANGES_TOPIC } from '../../transport/index.ts'
import { newClusterKey, replicaState, silentLogger, startMeshNode, type MeshNode, stoppedAfterEach } from '../helpers/mesh-node.ts'
import { startRawPeer } from '../helpers/raw-peer.ts'
import { waitFor } from '../helpers/wait-for.ts'

const { nodes, raws } = stoppedAfterEach()

/** The encoded change record of one put made by a scratch store with node id `origin`. */
async function changeOf(origin: string, id: string): Promise<Uint8Array> {
  const store = new EntityStore({ kv: new MemoryKvStore(), nodeId: origin, logger: silentLogger })
  await store.open()
  await store.write([{ op: 'put', ns: 'g', id, value: { by: origin } }])
  const records: Uint8Array[] = []
  for await (const bytes of store.changeLogBytes(origin, 0)) records.push(bytes)
  await store.close()
  expect(records).toHaveLength(1)
  return records[0] as Uint8Array
}

/** Two nodes connected, with anti-entropy too slow (60 s) to be what delivers within a test. */
async function pair(options: { signA?: boolean; signB?: boolean; antiEntropyIntervalMs?: number }): Promise<[MeshNode, MeshNode]> {
  const key = newClusterKey()
  const replicator = { antiEntropyIntervalMs: options.antiEntropyIntervalMs ?? 60_000 }
  const a = await startMeshNode({ clusterKey: key, signGossip: options.signA ?? false, replicator })
  const b = await startMeshNode({ clusterKey: key, signGossip: options.signB ?? false, replicator })
  nodes.push(a, b)
  await a.transport.dial(b.addr())
  // Subscribed to each other (when on one topic), and the sessions that run on connecting and on
  // subscribing are over, so what arrives afterwards came by gossip.
  const sameTopic = a.transport.gossipTopic === b.transport.gossipTopic
  await waitFor(() => !sameTopic || (a.transport.gossipPeers().length === 1 && b.transport.gossipPeers().length === 1), { timeout: 10_000 })
  await waitFor(() => a.replicator.stats.sessions + b.replicator.stats.sessions >= 1, { timeout: 10_000 })
  await new Promise((r) => setTimeout(r, 100))
  await Promise.all([a.replicator.idle(), b.replicator.idle()])
  return [a, b]
}

describe('gossip signature policy', () => {
  it('by default gossip is unsigned, on meshsync/changes/2, and carries a write to the peer', async () => {
    const [a, b] = await pair({})
    expect(a.transport.gossipTopic).toBe(CHANGES_TOPIC)
    expect(CHANGES_TOPIC).toBe('meshsync/changes/2')
    await a.store.write([{ op: 'put', ns: 'g', id: 'x', value: { v: 1 } }])
    await waitFor(async () => (await b.store.get('g', 'x').catch(() => undefined)) !== undefined, { timeout: 10_000 })
    expect(b.replicator.stats.gossipIn).toBeGreaterThanOrEqual(1)
  })

  it('with signGossip on both nodes, gossip still flows, signed, on the topic of nodes before 0.2', async () => {
    const [a, b] = await pair({ signA: true, signB: true })
    expect(a.transport.gossipTopic).toBe(SIGNED_CHANGES_TOPIC)
    expect(SIGNED_CHANGES_TOPIC).toBe('meshsync/changes/1')
    await b.store.write([{ op: 'put', ns: 'g', id: 'y', value: { v: 2 } }])
    await waitFor(async () => (await a.store.get('g', 'y').catch(() => undefined)) !== undefined, { timeout: 10_000 })
    expect(a.replicator.stats.gossipIn).toBeGreaterThanOrEqual(1)
  })

  it('a signing and a non-signing node exchange no gossip, and anti-entropy alone converges them', async () => {
    const [a, b] = await pair({ signA: true, signB: false, antiEntropyIntervalMs: 300 })
    for (let i = 0; i < 5; i++) {
      await a.store.write([{ op: 'put', ns: 'g', id: `a${i}`, value: { i } }])
      await b.store.write([{ op: 'patch', ns: 'g', id: `b${i}`, value: { i } }])
    }
    await waitFor(() => JSON.stringify(a.store.versionVector) === JSON.stringify(b.store.versionVector), { timeout: 20_000 })
    await Promise.all([a.replicator.idle(), b.replicator.idle()])
    expect(await replicaState(a)).toEqual(await replicaState(b))
    expect(a.replicator.stats.gossipIn + b.replicator.stats.gossipIn).toBe(0)
  })

  it('unsigned gossip: a message mixing origins is refused and struck against its sender; one origin per message is accepted, relayed or not', async () => {
    const key = newClusterKey()
    const victim = await startMeshNode({ clusterKey: key, replicator: { antiEntropyIntervalMs: 60_000 } })
    nodes.push(victim)
    const raw = await startRawPeer(key)
    raws.push(raw.node)
    await raw.node.dial(multiaddr(victim.addr()))
    await waitFor(() => raw.node.services.pubsub.getSubscribers(raw.topic).some((p) => p.equals(victim.transport.peerId)), { timeout: 10_000 })
    const third = 'abcdefabcdef0123'
    const own = await changeOf(raw.nodeId, 'own')
    const relayed = await changeOf(third, 'relayed')
    const rawPeerId = raw.node.peerId.toString()
    const strikes = (): number => victim.replicator.peerViews().find((p) => p.peerId === rawPeerId)?.invalidInputs ?? 0

    await raw.node.services.pubsub.publish(raw.topic, encodeGossip({ type: GOSSIP_CHANGES, records: [own, relayed] }))
    await waitFor(() => strikes() === 1, { timeout: 10_000 })
    expect(victim.store.versionVector).toEqual({})

    // Each alone: the raw peer's own change, and a third node's it relays (unsigned gossip cannot
    // tell a relay from its origin; members are trusted to relay honestly, as on the sync protocol).
    await raw.node.services.pubsub.publish(raw.topic, encodeGossip({ type: GOSSIP_CHANGES, records: [own] }))
    await raw.node.services.pubsub.publish(raw.topic, encodeGossip({ type: GOSSIP_CHANGES, records: [relayed] }))
    await waitFor(() => victim.store.versionVector[third] === 1 && victim.store.versionVector[raw.nodeId] === 1, { timeout: 10_000 })
    expect((await victim.store.get('g', 'relayed')).value).toEqual({ by: third })
    expect(strikes()).toBe(1)
  })
})
