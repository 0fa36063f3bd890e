import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BackupService } from '../../daemon/backup/service.ts'
import { quietLogger } from '../helpers/backup.ts'
import { newClusterKey, replicaState, startMeshNode, type MeshNode } from '../helpers/mesh-node.ts'
import { useTempDirs } from '../helpers/temp-dir.ts'
import { waitFor } from '../helpers/wait-for.ts'

const tempDir = useTempDirs('all')

describe('restore into the live node of a three-node mesh', () => {
  let nodes: MeshNode[] = []
  let backups: BackupService

  beforeAll(async () => {
    const key = newClusterKey()
    nodes = [await startMeshNode({ clusterKey: key }), await startMeshNode({ clusterKey: key }), await startMeshNode({ clusterKey: key })]
    const [a, b, c] = nodes as [MeshNode, MeshNode, MeshNode]
    await b.transport.dial(a.addr())
    await c.transport.dial(b.addr())
    backups = new BackupService({ store: a.store, logger: quietLogger }, { target: await tempDir('meshsync-repo-') })
  })

  afterAll(async () => {
    for (const n of nodes) await n.stop()
  })

  async function converged(check: (n: MeshNode) => Promise<boolean>): Promise<void> {
    await waitFor(async () => (await Promise.all(nodes.map(check))).every(Boolean), { timeout: 20_000, message: 'all three nodes' })
    const [first, ...rest] = await Promise.all(nodes.map(replicaState))
    for (const r of rest) expect(r.entities).toEqual(first?.entities)
  }

  it('rolls back an entity (record and text), undeletes one and deletes one created since, on all three', async () => {
    const [a, b, c] = nodes as [MeshNode, MeshNode, MeshNode]
    await a.store.write([
      { op: 'put', ns: 'docs', id: 'plan', value: { title: 'v1', owner: 'ann', tags: ['x'] } },
      { op: 'text', ns: 'docs', id: 'plan', name: 'body', splices: [[0, 0, 'Hello world, the first draft.']] },
      { op: 'put', ns: 'docs', id: 'memo', value: { title: 'keep me' } },
      { op: 'put', ns: 'other', id: 'x', value: { n: 1 } },
    ])
    await converged(async (n) => (await n.store.get('docs', 'memo').catch(() => undefined)) !== undefined && (await n.store.get('other', 'x').catch(() => undefined)) !== undefined)
    const backup = await backups.create({ type: 'full' })

    // Later, on other nodes: edits, a delete, a new entity.
    await b.store.write([
      { op: 'patch', ns: 'docs', id: 'plan', value: { title: 'v2', owner: null, extra: true } },
      { op: 'text', ns: 'docs', id: 'plan', name: 'body', splices: [[6, 5, 'there'], [0, 0, '>> ']] },
    ])
    await c.store.write([{ op: 'delete', ns: 'docs', id: 'memo' }, { op: 'put', ns: 'docs', id: 'newer', value: { late: 1 } }, { op: 'patch', ns: 'other', id: 'x', value: { n: 2 } }])
    await converged(async (n) => (await n.store.get('docs', 'newer').catch(() => undefined)) !== undefined && (await n.store.get('other', 'x')).value.n === 2)

    // One entity first.
    const one = await backups.restore({ backup: backup.id, ns: 'docs', id: 'plan' })
    expect(one).toMatchObject({ restored: 1, entities: 1 })
    await converged(async (n) => {
      const e = await n.store.get('docs', 'plan')
      return JSON.stringify(e.value) === JSON.stringify({ title: 'v1', owner: 'ann', tags: ['x'] }) && (await n.store.getText('docs', 'plan', 'body')).text === 'Hello world, the first draft.'
    })

    // Then the whole namespace: memo comes back, newer goes; the other namespace is untouched.
    const ns = await backups.restore({ backup: backup.id, ns: 'docs' })
    expect(ns).toMatchObject({ undeleted: 1, deleted: 1, unchanged: 1 })
    await converged(async (n) => {
      const memo = await n.store.get('docs', 'memo').catch(() => undefined)
      const newer = await n.store.get('docs', 'newer').catch(() => undefined)
      return memo?.value.title === 'keep me' && newer === undefined && (await n.store.get('other', 'x')).value.n === 2
    })
    // Restoring again changes nothing.
    expect(await backups.restore({ backup: backup.id, ns: 'docs' })).toMatchObject({ restored: 0, deleted: 0, undeleted: 0 })
  })
})
