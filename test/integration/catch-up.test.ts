import { afterEach, describe, expect, it } from 'vitest'
import type { ChangeRecord } from '../../crdt/index.ts'
import { LevelKvStore } from '../../daemon/storage/index.ts'
import type { LocalOp } from '../../daemon/store/entity-store.ts'
import { generateIdentityKey } from '../../transport/index.ts'
import { newClusterKey, startMeshNode, tempLevel, type MeshNode } from '../helpers/mesh-node.ts'
import { waitFor } from '../helpers/wait-for.ts'

const TOTAL = Number(process.env.MESHSYNC_CATCHUP_TOTAL ?? 100_000)
const CHANGED = TOTAL / 10

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function writeAll(node: MeshNode, ops: LocalOp[]): Promise<void> {
  for (let i = 0; i < ops.length; i += 1000) await node.store.write(ops.slice(i, i + 1000))
}

describe('catch-up of a node that was offline', () => {
  it(`receives only what changed: ${CHANGED} of ${TOTAL} entities, bytes within 1.5x of the changed Yjs updates`, async () => {
    const key = newClusterKey()
    const levelA = await tempLevel()
    const levelB = await tempLevel()
    cleanups.push(levelA.cleanup, levelB.cleanup)
    const a = await startMeshNode({ clusterKey: key, kv: levelA.kv })
    cleanups.push(() => a.stop())
    const bKey = await generateIdentityKey()
    let b = await startMeshNode({ clusterKey: key, kv: levelB.kv, identityKey: bKey })

    const ops: LocalOp[] = []
    for (let i = 0; i < TOTAL; i++) ops.push({ op: 'put', ns: 'inv', id: `item-${String(i).padStart(6, '0')}`, value: { sku: i, qty: i % 97, site: 'north' } })
    await writeAll(a, ops)
    await b.transport.dial(a.addr())
    await waitFor(() => (b.store.versionVector[a.store.nodeId] ?? 0) === TOTAL, { timeout: 120_000, interval: 200 })
    await b.replicator.idle()
    await b.stop()

    // While B is down, A changes every tenth entity.
    const before = a.store.versionVector[a.store.nodeId] ?? 0
    const changes: LocalOp[] = []
    for (let i = 0; i < TOTAL; i += 10) changes.push({ op: 'patch', ns: 'inv', id: `item-${String(i).padStart(6, '0')}`, value: { qty: (i % 97) + 1 } })
    await writeAll(a, changes)
    let updateBytes = 0
    for await (const c of a.store.changeLog(a.store.nodeId, before)) updateBytes += (c as ChangeRecord).update.length

    b = await startMeshNode({ clusterKey: key, kv: new LevelKvStore(levelB.kv.location), identityKey: bKey })
    cleanups.push(() => b.stop())
    await b.transport.dial(a.addr())
    await waitFor(() => (b.store.versionVector[a.store.nodeId] ?? 0) === TOTAL + CHANGED, { timeout: 120_000, interval: 100 })
    await b.replicator.idle()

    const received = b.replicator.stats.bytesIn
    const ratio = received / updateBytes
    console.log(`catch-up: ${CHANGED} changes, Yjs update bytes ${updateBytes}, received ${received} (ratio ${ratio.toFixed(3)}), records ${b.replicator.stats.recordsIn}`)
    expect(b.replicator.stats.recordsIn).toBe(CHANGED)
    expect(ratio).toBeLessThanOrEqual(1.5)
    expect((await b.store.get('inv', 'item-000010')).value).toEqual({ sku: 10, qty: 11, site: 'north' })
  }, 300_000)
})
