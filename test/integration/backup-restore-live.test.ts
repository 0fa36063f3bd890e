import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createBackup } from '../../daemon/backup/create.ts'
import { BackupError } from '../../daemon/backup/errors.ts'
import { restoreIntoLive } from '../../daemon/backup/restore.ts'
import { openSealer } from '../../daemon/backup/seal.ts'
import { BackupService } from '../../daemon/backup/service.ts'
import { openRepository } from '../../daemon/backup/target.ts'
import { StorageError } from '../../daemon/storage/errors.ts'
import type { KvBatchOp, KvWriteOptions } from '../../daemon/storage/kv-store.ts'
import { MemoryKvStore } from '../../daemon/storage/memory-kv-store.ts'
import { EntityStore, type LocalOp } from '../../daemon/store/entity-store.ts'
import { quietLogger, stateOf } from '../helpers/backup.ts'
import { HookedRepository } from '../helpers/backup-repository.ts'
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

/** A memory store whose next batch writing `failOn` fails (a disk error in the middle of a restore). */
class FaultyKv extends MemoryKvStore {
  failOn: string | undefined

  override async batch(ops: readonly KvBatchOp[], options: KvWriteOptions): Promise<void> {
    const key = this.failOn
    if (key !== undefined && ops.some((op) => op.key === key)) {
      this.failOn = undefined
      throw new StorageError('STORAGE_FAILURE', 'injected write failure')
    }
    return super.batch(ops, options)
  }
}

describe('a live restore is all or nothing', () => {
  const N = 1200
  const id = (i: number): string => `e${String(i).padStart(4, '0')}`

  it('a write failure or an unreadable chunk halfway leaves every entity as it was; a retry restores them all', async () => {
    const kv = new FaultyKv()
    const store = new EntityStore({ kv, nodeId: 'e1e2e3e4e5e6e7e8', logger: quietLogger })
    await store.open()
    await store.write(Array.from({ length: N }, (_, i): LocalOp => ({ op: 'put', ns: 'inv', id: id(i), value: { v: 'backed up', i } })))
    const repo = new HookedRepository(openRepository(await tempDir('meshsync-repo-')))
    let failOn: string | undefined
    repo.before = (call, key) => {
      if (call === 'get' && key === failOn) throw new BackupError('TARGET_UNREACHABLE', `injected: ${key} cannot be read`)
    }
    const backup = await createBackup(repo, store, 'full', { chunkBytes: 16 * 1024 })
    expect(backup.chunks.length).toBeGreaterThan(3)
    await store.write(Array.from({ length: N }, (_, i): LocalOp => ({ op: 'patch', ns: 'inv', id: id(i), value: { v: 'later' } })))
    const before = await stateOf(store.entities())
    const { sealer } = await openSealer(repo, {})

    // The store fails the batch that writes an entity of the second half: before, the restore
    // wrote 500 entities per batch and left the first ones rolled back.
    kv.failOn = `e\u0000inv\u0000${id(900)}`
    await expect(restoreIntoLive(repo, sealer, backup, store)).rejects.toMatchObject({ code: 'STORAGE_FAILURE' })
    expect(await stateOf(store.entities())).toEqual(before)

    // The repository fails on a chunk past the middle: nothing was written either.
    failOn = `sets/${backup.id}/${backup.chunks[Math.floor(backup.chunks.length / 2) + 1]?.name}`
    await expect(restoreIntoLive(repo, sealer, backup, store)).rejects.toMatchObject({ code: 'TARGET_UNREACHABLE' })
    expect(await stateOf(store.entities())).toEqual(before)
    failOn = undefined

    expect(await restoreIntoLive(repo, sealer, backup, store)).toMatchObject({ entities: N, restored: N })
    for (const i of [0, 600, 900, N - 1]) expect((await store.get('inv', id(i))).value).toEqual({ v: 'backed up', i })
    await store.close()
  })

  it('more writes than the store takes in one batch: RESTORE_TOO_LARGE, nothing written', async () => {
    const store = new EntityStore({ kv: new MemoryKvStore(), nodeId: 'e1e2e3e4e5e6e7e8', logger: quietLogger }, { maxQueuedOps: 100 })
    await store.open()
    for (let i = 0; i < 150; i += 50) await store.write(Array.from({ length: 50 }, (_, j): LocalOp => ({ op: 'put', ns: 'inv', id: id(i + j), value: { v: 1 } })))
    const repo = openRepository(await tempDir('meshsync-repo-'))
    const backup = await createBackup(repo, store, 'full')
    for (let i = 0; i < 150; i += 50) await store.write(Array.from({ length: 50 }, (_, j): LocalOp => ({ op: 'patch', ns: 'inv', id: id(i + j), value: { v: 2 } })))
    const before = await stateOf(store.entities())
    const { sealer } = await openSealer(repo, {})
    await expect(restoreIntoLive(repo, sealer, backup, store)).rejects.toMatchObject({ code: 'RESTORE_TOO_LARGE', set: backup.id })
    expect(await stateOf(store.entities())).toEqual(before)
    // One namespace at a time fits when it is small enough; here a single entity does.
    expect(await restoreIntoLive(repo, sealer, backup, store, { scope: { ns: 'inv', id: id(7) } })).toMatchObject({ restored: 1 })
    await store.close()
  })
})
