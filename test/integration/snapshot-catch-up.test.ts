import { describe, expect, it } from 'vitest'
import type { LocalOp } from '../../daemon/store/entity-store.ts'
import { generateIdentityKey } from '../../transport/index.ts'
import { newClusterKey, replicaState, startMeshNode, type MeshNode, stoppedAfterEach } from '../helpers/mesh-node.ts'
import { waitFor } from '../helpers/wait-for.ts'

const { nodes } = stoppedAfterEach()

const sameVector = (a: MeshNode, b: MeshNode): boolean => JSON.stringify(a.store.versionVector) === JSON.stringify(b.store.versionVector)

describe('snapshot + delta catch-up', () => {
  it('a new node gets entity states instead of a long history, then deltas; a node caught up that way serves snapshots too', async () => {
    const key = newClusterKey()
    const a = await startMeshNode({ clusterKey: key })
    nodes.push(a)
    // 200 entities, each rewritten 10 times, some with text, some deleted: 2,000+ records of
    // history for 200 entities of state.
    for (let round = 0; round < 10; round++) {
      const ops: LocalOp[] = []
      for (let i = 0; i < 200; i++) ops.push({ op: 'patch', ns: 'hist', id: `e${i}`, value: { round, [`f${round % 3}`]: i } })
      await a.store.write(ops)
    }
    await a.store.write([{ op: 'text', ns: 'hist', id: 'e1', name: 'notes', splices: [[0, 0, 'hello snapshot']] }])
    await a.store.write([{ op: 'delete', ns: 'hist', id: 'e2' }])

    const b = await startMeshNode({ clusterKey: key })
    nodes.push(b)
    await b.transport.dial(a.addr())
    await waitFor(() => sameVector(a, b), { timeout: 30_000 })
    await Promise.all([a.replicator.idle(), b.replicator.idle()])
    expect(b.replicator.stats.snapshotEntitiesIn).toBe(200)
    expect(b.replicator.stats.recordsIn).toBe(0)
    expect(b.store.logFloor).toEqual(a.store.versionVector)
    expect(await replicaState(b)).toEqual(await replicaState(a))
    await expect(b.store.get('hist', 'e2')).rejects.toMatchObject({ code: 'ENTITY_NOT_FOUND' })

    // Deltas after the snapshot travel as records.
    await a.store.write([{ op: 'patch', ns: 'hist', id: 'e3', value: { after: true } }])
    await waitFor(() => sameVector(a, b), { timeout: 10_000 })
    expect((await b.store.get('hist', 'e3')).value).toMatchObject({ after: true })

    // C can only reach B, whose log starts at its snapshot: B must serve C a snapshot.
    const c = await startMeshNode({ clusterKey: key, allowPeers: [b.transport.peerId.toString()] })
    nodes.push(c)
    await c.transport.dial(b.addr())
    await waitFor(() => sameVector(b, c), { timeout: 30_000 })
    await Promise.all(nodes.map((n) => n.replicator.idle()))
    expect(c.replicator.stats.snapshotEntitiesIn).toBeGreaterThan(0)
    const states = await Promise.all([a, b, c].map(replicaState))
    expect(states[2]).toEqual(states[0])
    expect((await c.store.getText('hist', 'e1', 'notes')).text).toBe('hello snapshot')
  })

  it('a long-offline node gets only the entities that changed, as state', async () => {
    const key = newClusterKey()
    const a = await startMeshNode({ clusterKey: key, replicator: { snapshotThreshold: 100 } })
    nodes.push(a)
    const bKey = await generateIdentityKey()
    let b = await startMeshNode({ clusterKey: key, identityKey: bKey })
    const ops: LocalOp[] = []
    for (let i = 0; i < 500; i++) ops.push({ op: 'put', ns: 'off', id: `e${i}`, value: { v: 0 } })
    await a.store.write(ops)
    await b.transport.dial(a.addr())
    await waitFor(() => sameVector(a, b), { timeout: 20_000 })
    await b.replicator.idle()
    await b.stop()
    // While B is down: 20 entities change 60 times each (1,200 records, more than twice the entities).
    for (let round = 1; round <= 60; round++) {
      const batch: LocalOp[] = []
      for (let i = 0; i < 20; i++) batch.push({ op: 'patch', ns: 'off', id: `e${i}`, value: { v: round } })
      await a.store.write(batch)
    }
    b = await startMeshNode({ clusterKey: key, identityKey: bKey, kv: b.kv })
    nodes.push(b)
    await b.transport.dial(a.addr())
    await waitFor(() => sameVector(a, b), { timeout: 20_000 })
    await Promise.all([a.replicator.idle(), b.replicator.idle()])
    expect(b.replicator.stats.snapshotEntitiesIn).toBe(20)
    expect(b.replicator.stats.recordsIn).toBe(0)
    expect(await replicaState(b)).toEqual(await replicaState(a))
  })
})
