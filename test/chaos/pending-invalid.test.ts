import { expect, it } from 'vitest'
import type { ChangeRecord } from '../../crdt/index.ts'
import { newClusterKey, startMeshNode, stoppedAfterEach } from '../helpers/mesh-node.ts'

const { nodes } = stoppedAfterEach()

/**
 * Found by fuzzing the sync protocol (scripts/chaos/fuzz.ts): a change record whose Yjs update is
 * malformed was refused but stayed in the pending buffer under its dot, so the honest copy of the
 * same change, arriving later, was taken for a duplicate and never applied: the origin stalled
 * on that node for good (and the bad record was re-examined and re-counted on every ingest).
 */
it('a malformed copy of a change does not keep the honest copy out', async () => {
  const key = newClusterKey()
  const origin = await startMeshNode({ clusterKey: key })
  const victim = await startMeshNode({ clusterKey: key })
  nodes.push(origin, victim)
  await origin.store.write([{ op: 'put', ns: 'n', id: 'x', value: { v: 1 } }])
  const honest: ChangeRecord[] = []
  for await (const c of origin.store.changeLog(origin.store.nodeId, 0)) honest.push(c)
  expect(honest).toHaveLength(1)
  const bad = { ...(honest[0] as ChangeRecord), update: new Uint8Array([255, 255, 255, 255, 1]) }

  await victim.replicator.receiveChanges([bad], { peerId: 'test-peer', nodeId: origin.store.nodeId })
  expect(victim.store.versionVector[origin.store.nodeId] ?? 0).toBe(0)
  const invalidAfterBad = victim.replicator.stats.invalidInputs
  await victim.replicator.receiveChanges(honest, { peerId: 'test-peer', nodeId: origin.store.nodeId })
  expect(victim.store.versionVector[origin.store.nodeId]).toBe(1)
  expect((await victim.store.get('n', 'x')).value).toEqual({ v: 1 })
  // The bad record was counted once, not again on the next ingest.
  expect(victim.replicator.stats.invalidInputs).toBe(invalidAfterBad)
})
