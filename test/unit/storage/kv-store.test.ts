import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { LevelKvStore, MemoryKvStore, StorageError } from '../../../daemon/storage/index.ts'
import type { KvStore } from '../../../daemon/storage/index.ts'
import { kvStoreSuite } from './kv-store.suite.ts'

kvStoreSuite(
  'MemoryKvStore',
  async () => ({
    store: new MemoryKvStore(),
    cleanup: async () => {},
  }),
  { durable: false },
)

async function levelFixture(): Promise<{ location: string; store: LevelKvStore; reopen: () => Promise<KvStore>; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'meshsync-kv-'))
  // A nested location also checks that open() creates the directories.
  const location = join(dir, 'data', 'db')
  return {
    location,
    store: new LevelKvStore(location, { cacheSize: 1024 * 1024, writeBufferSize: 1024 * 1024 }),
    reopen: async () => new LevelKvStore(location),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  }
}

kvStoreSuite('LevelKvStore', levelFixture, { durable: true })

describe('LevelKvStore iterators', () => {
  afterEach(() => {
    vi.restoreAllMocks()
  })

  it('closes the level iterator on natural end, early break and consumer error, before the store closes', async () => {
    const { store, cleanup } = await levelFixture()
    await store.open()
    try {
      await store.batch(Array.from({ length: 100 }, (_, i) => ({ type: 'put' as const, key: `k${String(i).padStart(3, '0')}`, value: Uint8Array.of(i) })), { sync: false })
      const spy = vi.spyOn(Level.prototype, 'iterator')

      let count = 0
      for await (const _ of store.iterate()) count++
      expect(count).toBe(100)
      for await (const _ of store.iterate({ reverse: true })) break
      await expect(
        (async () => {
          for await (const _ of store.iterate({ gt: 'k050' })) throw new Error('consumer failed')
        })(),
      ).rejects.toThrow('consumer failed')
      const snapshot = store.snapshot()
      for await (const _ of snapshot.iterate()) break
      await snapshot.close()

      const iterators = spy.mock.results.map((r) => r.value as { nextv(n: number): Promise<unknown> })
      expect(iterators).toHaveLength(4)
      for (const iterator of iterators) {
        await expect(iterator.nextv(1)).rejects.toMatchObject({ code: 'LEVEL_ITERATOR_NOT_OPEN' })
      }
    } finally {
      await store.close()
      await cleanup()
    }
  })
})

describe('LevelKvStore errors', () => {
  async function openError(store: LevelKvStore): Promise<StorageError> {
    try {
      await store.open()
    } catch (err) {
      expect(err).toBeInstanceOf(StorageError)
      return err as StorageError
    }
    throw new Error('expected open() to fail')
  }

  it('fails to open a database another instance holds, with STORAGE_FAILURE and the level cause', async () => {
    const { location, store, cleanup } = await levelFixture()
    await store.open()
    const second = new LevelKvStore(location)
    try {
      const err = await openError(second)
      expect(err.code).toBe('STORAGE_FAILURE')
      expect(err.cause).toMatchObject({ code: 'LEVEL_DATABASE_NOT_OPEN', cause: { code: 'LEVEL_LOCKED' } })
    } finally {
      await second.close()
      await store.close()
      await cleanup()
    }
  })

  it('reports a corrupt database as STORAGE_CORRUPT', async () => {
    const { location, store, cleanup } = await levelFixture()
    await store.open()
    await store.batch([{ type: 'put', key: 'a', value: Uint8Array.of(1) }], { sync: true })
    await store.close()
    await writeFile(join(location, 'CURRENT'), 'not a manifest name')
    try {
      expect((await openError(store)).code).toBe('STORAGE_CORRUPT')
    } finally {
      await store.close()
      await cleanup()
    }
  })
})
