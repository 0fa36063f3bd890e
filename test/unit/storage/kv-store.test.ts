import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LevelKvStore, MemoryKvStore } from '../../../daemon/storage/index.ts'
import { kvStoreSuite } from './kv-store.suite.ts'

kvStoreSuite('MemoryKvStore', async () => ({
  store: new MemoryKvStore(),
  cleanup: async () => {},
}))

kvStoreSuite('LevelKvStore', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'meshsync-kv-'))
  // A nested location also checks that open() creates the directories.
  const location = join(dir, 'data', 'db')
  return {
    store: new LevelKvStore(location, { cacheSize: 1024 * 1024, writeBufferSize: 1024 * 1024 }),
    reopen: async () => new LevelKvStore(location),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  }
})
