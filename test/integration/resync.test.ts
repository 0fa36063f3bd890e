import { describe, expect, it } from 'vitest'
import type { LocalOp } from '../../daemon/store/entity-store.ts'
import { newClusterKey, replicaState, startMeshNode, stoppedAfterEach } from '../helpers/mesh-node.ts'
import { waitFor } from '../helpers/wait-for.ts'

const { nodes } = stoppedAfterEach()

describe('full refresh of a namespace from a peer (resync)', () => {
  it('restores a namespace that anti-entropy cannot (the node believes it has everything), and leaves others alone', async () => {
    const key = newClusterKey()
    const a = await startMeshNode({ clusterKey: key })
    const b = await startMeshNode({ clusterKey: key })
    nodes.push(a, b)
    const ops: LocalOp[] = []
    for (let i = 0; i < 120; i++) ops.push({ op: 'put', ns: 'catalog', id: `sku-${i}`, value: { price: i } })
    await a.store.write(ops)
    await a.store.write([{ op: 'text', ns: 'catalog', id: 'sku-1', name: 'desc', splices: [[0, 0, 'red apple']] }])
    await a.store.write([{ op: 'delete', ns: 'catalog', id: 'sku-2' }])
    await a.store.write([{ op: 'put', ns: 'other', id: 'x', value: { keep: true } }])
    await b.transport.dial(a.addr())
    await waitFor(() => JSON.stringify(a.store.versionVector) === JSON.stringify(b.store.versionVector), { timeout: 20_000 })
    await Promise.all([a.replicator.idle(), b.replicator.idle()])

    // B loses its copy of the namespace; its vector still says it has every change.
    expect(await b.store.wipeNamespace('catalog')).toBe(120)
    await expect(b.store.get('catalog', 'sku-5')).rejects.toMatchObject({ code: 'ENTITY_NOT_FOUND' })
    b.replicator.syncWith(a.transport.peerId.toString())
    await b.replicator.idle()
    await expect(b.store.get('catalog', 'sku-5')).rejects.toMatchObject({ code: 'ENTITY_NOT_FOUND' })

    const result = await b.replicator.resyncNamespace('catalog', { from: a.transport.peerId.toString() })
    expect(result).toMatchObject({ from: a.transport.peerId.toString(), entities: 120, removed: 0 })
    expect(await replicaState(b)).toEqual(await replicaState(a))
    expect((await b.store.getText('catalog', 'sku-1', 'desc')).text).toBe('red apple')
    expect(b.store.entityCounts).toEqual(a.store.entityCounts)
    expect((await b.store.get('other', 'x')).value).toEqual({ keep: true })
  })

  it('refuses cleanly without a connected peer, changing nothing', async () => {
    const a = await startMeshNode({ clusterKey: newClusterKey() })
    nodes.push(a)
    await a.store.write([{ op: 'put', ns: 'catalog', id: 'x', value: { v: 1 } }])
    await expect(a.replicator.resyncNamespace('catalog')).rejects.toMatchObject({ code: 'NO_PEER' })
    expect((await a.store.get('catalog', 'x')).value).toEqual({ v: 1 })
  })
})
