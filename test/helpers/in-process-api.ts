import type { FastifyInstance } from 'fastify'
import type { ApiContext } from '../../daemon/api/context.ts'
import type { BackupService } from '../../daemon/backup/service.ts'
import { createApiServer } from '../../daemon/api/server.ts'
import { MemoryKvStore } from '../../daemon/storage/index.ts'
import { EntityStore } from '../../daemon/store/entity-store.ts'
import { silentLogger } from './mesh-node.ts'

/** What a context member that the test does not expect to be used answers. */
function unused(what: string): never {
  throw new Error(`${what} is not part of this in-process API`)
}

/**
 * The daemon's API as a fastify app in this process (no network, no transport): a memory store,
 * no peers, and backups only when `backups` makes them over the store. Enough for `inject` and
 * for `app.swagger()` (the `/openapi.json` document).
 */
export async function inProcessApi(options: { token?: string; backups?: (store: EntityStore) => BackupService } = {}): Promise<{ app: FastifyInstance; close(): Promise<void> }> {
  const store = new EntityStore({ kv: new MemoryKvStore(), nodeId: 'a1b2c3d4e5f60718', logger: silentLogger }, { modeOf: () => 'two-way', conflictPolicyOf: () => 'auto' })
  await store.open()
  const backups = options.backups?.(store)
  const ctx: ApiContext = {
    store,
    nodeId: 'a1b2c3d4e5f60718',
    peerId: 'in-process',
    startedAt: Date.now(),
    listen: () => [],
    peers: () => [],
    gossip: () => ({ topic: 'in-process', signed: false, peers: 0 }),
    dial: async () => unused('dial'),
    metrics: async () => ({ contentType: 'text/plain', body: '' }),
    resync: async () => unused('resync'),
    ...(backups && { backups }),
  }
  const app = await createApiServer(ctx, { logger: silentLogger, bodyLimit: 1 << 20, ...(options.token !== undefined && { token: options.token }) })
  return {
    app,
    close: async () => {
      await app.close()
      await backups?.stop()
      await store.close()
    },
  }
}
