import { afterEach, describe, expect, it } from 'vitest'
import { vectorDigest } from '../../daemon/replication/state-digest.ts'
import { BlackholeProxy } from '../helpers/blackhole-proxy.ts'
import { newClusterKey, startMeshNode, stoppedAfterEach } from '../helpers/mesh-node.ts'
import { waitFor } from '../helpers/wait-for.ts'

const { nodes } = stoppedAfterEach()
let proxy: BlackholeProxy | undefined

afterEach(async () => {
  await proxy?.close()
  proxy = undefined
})

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')

describe('the link monitor', () => {
  it('closes a connection whose link went silent, on the side that probes', async () => {
    const clusterKey = newClusterKey()
    const a = await startMeshNode({ clusterKey, linkProbeMs: 300 })
    const b = await startMeshNode({ clusterKey, linkProbeMs: 300 })
    nodes.push(a, b)
    const bId = b.transport.peerId.toString()
    proxy = await BlackholeProxy.start(Number(b.addr().split('/')[4]))
    await a.transport.dial(`/ip4/127.0.0.1/tcp/${proxy.port}/p2p/${bId}`)
    // Probes go and answers come back while the link passes bytes.
    await waitFor(() => a.transport.linkStats.probes >= 3, { message: 'three probes answered' })
    expect(a.transport.connectionsTo(bId).map((c) => c.status)).toEqual(['open'])
    expect(a.transport.linkStats.deadLinks + b.transport.linkStats.deadLinks).toBe(0)

    const [onA] = a.transport.connectionsTo(bId)
    // A partition that drops every packet, FIN and RST included: TCP alone would not notice.
    proxy.blackholeOpen()
    // The probing side (A) finds it: its probe goes unanswered.
    await waitFor(() => !a.transport.connectionsTo(bId).some((c) => c.id === onA?.id), { timeout: 15_000, message: "A's connection closed" })
    expect(a.transport.linkStats.deadLinks).toBeGreaterThanOrEqual(1)
  }, 30_000)

  it('the answering side closes a connection whose probes stopped coming', async () => {
    const clusterKey = newClusterKey()
    const a = await startMeshNode({ clusterKey, linkProbeMs: 300 })
    const b = await startMeshNode({ clusterKey, linkProbeMs: 300 })
    nodes.push(b)
    const [aId, bId] = [a, b].map((n) => n.transport.peerId.toString()) as [string, string]
    proxy = await BlackholeProxy.start(Number(b.addr().split('/')[4]))
    await a.transport.dial(`/ip4/127.0.0.1/tcp/${proxy.port}/p2p/${bId}`)
    await waitFor(() => a.transport.linkStats.probes >= 3, { message: 'three probes answered' })
    const [onB] = b.transport.connectionsTo(aId)
    // A goes away behind a partition: its goodbye never reaches B, and no probe comes any more
    // (nor a new connection from A that would replace this one).
    proxy.blackholeOpen()
    await a.stop()
    await waitFor(() => !b.transport.connectionsTo(aId).some((c) => c.id === onB?.id), { timeout: 15_000, message: "B's connection closed" })
    expect(b.transport.linkStats.deadLinks).toBeGreaterThanOrEqual(1)
  }, 30_000)

  it("carries each side's version vector digest both ways: in-sync peers skip periodic sessions, a difference brings one", async () => {
    const clusterKey = newClusterKey()
    let dropOnA = false
    // No forced session: only a digest that differs can start a periodic one.
    const replicator = { antiEntropyIntervalMs: 400, inSyncMaxSkippedPeriods: 1_000_000 }
    const a = await startMeshNode({ clusterKey, linkProbeMs: 200, replicator, dropInboundGossip: () => dropOnA })
    const b = await startMeshNode({ clusterKey, linkProbeMs: 200, replicator })
    nodes.push(a, b)
    const seenOnA: string[] = []
    const seenOnB: string[] = []
    a.transport.on('peer:digest', (_peer, digest) => seenOnA.push(hex(digest)))
    b.transport.on('peer:digest', (_peer, digest) => seenOnB.push(hex(digest)))
    await b.store.write([{ op: 'put', ns: 'ns', id: 'x', value: { v: 1 } }])
    await a.transport.dial(b.addr())
    await waitFor(async () => (await a.store.get('ns', 'x')).id === 'x', { message: 'the write on A' })
    // Once both hold the same changes, each hears the other's digest of the same vector.
    const same = hex(vectorDigest(b.store.versionVector))
    expect(hex(vectorDigest(a.store.versionVector))).toBe(same)
    await waitFor(() => seenOnA.includes(same) && seenOnB.includes(same), { message: 'the digest of the common vector both ways' })
    // Periodic ticks now find the peer in sync and start no session.
    await waitFor(() => a.replicator.stats.periodicInSync + b.replicator.stats.periodicInSync >= 4, { timeout: 10_000, message: 'periodic sessions skipped' })
    const sessions = a.replicator.stats.sessions
    await new Promise((resolve) => setTimeout(resolve, 1500))
    expect(a.replicator.stats.sessions - sessions).toBe(0)

    // A write gossip loses on the way to A: the digests differ, and the next tick repairs it.
    dropOnA = true
    await b.store.write([{ op: 'put', ns: 'ns', id: 'lost', value: { v: 2 } }])
    await waitFor(async () => (await a.store.get('ns', 'lost')).id === 'lost', { timeout: 10_000, message: 'the lost write on A' })
    expect(a.replicator.stats.sessions).toBeGreaterThan(sessions)
  }, 30_000)
})
