import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { createBackup } from '../../daemon/backup/create.ts'
import { restoreIntoDir } from '../../daemon/backup/restore.ts'
import { openSealer } from '../../daemon/backup/seal.ts'
import { openRepository } from '../../daemon/backup/target.ts'
import { LevelKvStore } from '../../daemon/storage/level-kv-store.ts'
import { MemoryKvStore } from '../../daemon/storage/memory-kv-store.ts'
import { EntityStore } from '../../daemon/store/entity-store.ts'
import { quietLogger, restoredState, stateOf } from '../helpers/backup.ts'
import { useTempDirs } from '../helpers/temp-dir.ts'

/**
 * A restore writes the entities it reads in chunks (2,000 entities each) and reads the next chunk
 * while LevelDB writes the last one. These restores span several chunks.
 */

const tempDir = useTempDirs('all')
const ENTITIES = 7_500

async function sourceStore(): Promise<EntityStore> {
  const store = new EntityStore({ kv: new MemoryKvStore(), nodeId: 'e1b2c3d4e5f60718', logger: quietLogger })
  await store.open()
  for (let i = 0; i < ENTITIES; i += 500) {
    await store.write(Array.from({ length: 500 }, (_, k) => ({ op: 'put' as const, ns: i % 1000 === 0 ? 'a' : 'b', id: `e${String(i + k).padStart(5, '0')}`, value: { n: i + k } })))
  }
  await store.write([{ op: 'delete', ns: 'b', id: 'e00600' }])
  return store
}

afterEach(() => {
  vi.restoreAllMocks()
})

describe('a restore of several chunks', () => {
  it('holds every entity, deleted ones too, and the node vector of the backup', async () => {
    const store = await sourceStore()
    const repo = openRepository(await tempDir('meshsync-repo-'))
    const m = await createBackup(repo, store, 'full')
    const { sealer } = await openSealer(repo, {})
    const into = join(await tempDir('meshsync-restore-'), 'node')
    const batches = vi.spyOn(LevelKvStore.prototype, 'batch')
    const result = await restoreIntoDir(repo, sealer, m, into, { logger: quietLogger })
    expect(result.entities).toBe(ENTITIES)
    expect(result.deleted).toBe(1)
    expect(batches.mock.calls.length).toBeGreaterThanOrEqual(4) // several chunks, then the node metadata
    const restored = await restoredState(into)
    expect(restored.state).toEqual(await stateOf(store.entities()))
    expect(restored.vv).toEqual(store.versionVector)
    await store.close()
  })

  // 7,500 entities: chunks 1-4 (the last one of 1,500), then the node metadata.
  it.each([
    ['a chunk written while the next was read', 2],
    ['the last chunk', 4],
  ])('fails with the failure of %s, and leaves no directory', async (_what, failing) => {
    const store = await sourceStore()
    const repo = openRepository(await tempDir('meshsync-repo-'))
    const m = await createBackup(repo, store, 'full')
    const { sealer } = await openSealer(repo, {})
    const into = join(await tempDir('meshsync-restore-'), 'node')
    const real = LevelKvStore.prototype.batch
    let calls = 0
    vi.spyOn(LevelKvStore.prototype, 'batch').mockImplementation(function (this: LevelKvStore, ...args: Parameters<LevelKvStore['batch']>) {
      // That chunk's write fails after a moment (meanwhile the next chunk, if any, is read).
      if (++calls === failing) return new Promise((_, reject) => setTimeout(() => reject(Object.assign(new Error('disk failed'), { code: 'STORAGE_FAILURE' })), 20))
      return real.apply(this, args)
    })
    await expect(restoreIntoDir(repo, sealer, m, into, { logger: quietLogger })).rejects.toMatchObject({ code: 'STORAGE_FAILURE', message: 'disk failed' })
    expect(calls).toBe(failing) // nothing written after the failed chunk
    expect(existsSync(into)).toBe(false)
    await store.close()
  })

  it('fails on a damaged chunk read while a write is in flight, after that write ended, and leaves no directory', async () => {
    const store = await sourceStore()
    const repo = openRepository(await tempDir('meshsync-repo-'))
    const m = await createBackup(repo, store, 'full', { chunkBytes: 64 * 1024 })
    expect(m.chunks.length).toBeGreaterThan(3)
    const last = m.chunks.at(-1)?.name as string
    await repo.put(`sets/${m.id}/${last}`, new TextEncoder().encode('damaged'))
    const { sealer } = await openSealer(repo, {})
    const into = join(await tempDir('meshsync-restore-'), 'node')
    const real = LevelKvStore.prototype.batch
    let started = 0
    let ended = 0
    vi.spyOn(LevelKvStore.prototype, 'batch').mockImplementation(async function (this: LevelKvStore, ...args: Parameters<LevelKvStore['batch']>) {
      started++
      await new Promise((resolve) => setTimeout(resolve, 200)) // slow writes: the bad chunk is read meanwhile
      try {
        return await real.apply(this, args)
      } finally {
        ended++
      }
    })
    await expect(restoreIntoDir(repo, sealer, m, into, { logger: quietLogger })).rejects.toMatchObject({ code: 'BACKUP_CORRUPT' })
    expect(started).toBeGreaterThan(0)
    expect(ended).toBe(started)
    expect(existsSync(into)).toBe(false)
    await store.close()
  })
})
