import { describe, expect, it } from 'vitest'
import { MemoryKvStore } from '../../../daemon/storage/index.ts'
import { BulkLoader } from '../../../daemon/store/bulk-load.ts'
import { decodeMeta } from '../../../daemon/store/entity-meta.ts'
import { EntityStore, splitEntityKey } from '../../../daemon/store/entity-store.ts'
import { quietLogger, randomWrites, seededRandom } from '../../helpers/backup.ts'
import { replicate } from '../../helpers/store-replication.ts'

async function open(nodeId: string, kv = new MemoryKvStore()): Promise<EntityStore> {
  const store = new EntityStore({ kv, nodeId, logger: quietLogger })
  await store.open()
  return store
}


/**
 * Every key and value of a store outside the change log, what is derived from the log alone (the
 * history index and its purge records, docs/history.md) and the node metadata.
 */
async function derived(kv: MemoryKvStore): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for await (const [key, value] of kv.iterate()) if (!['l', 'h', 'g', 'm'].some((p) => key.startsWith(`${p}\u0000`))) out[key] = Buffer.from(value).toString('base64')
  return out
}

describe('BulkLoader', () => {
  it("reproduces a store's entities and everything the store derives from them, byte for byte", async () => {
    // Two replicas writing concurrently (conflicts), with texts, deletes and undeletes.
    const kvA = new MemoryKvStore()
    const a = await open('a1a2a3a4a5a6a7a8', kvA)
    const b = await open('b1b2b3b4b5b6b7b8')
    const rng = seededRandom(11)
    await randomWrites(a, rng, 150)
    await replicate(a, b)
    await Promise.all([randomWrites(a, rng, 80), randomWrites(b, rng, 80)])
    await replicate(b, a)
    await a.wipeNamespace('notes')
    await randomWrites(a, rng, 40, ['items', 'notes'], 10)
    expect((await a.conflicts()).length).toBeGreaterThan(0)

    const kvB = new MemoryKvStore()
    await kvB.open()
    const loader = new BulkLoader(kvB)
    const snapshot = await a.openSnapshot()
    let entities = 0
    try {
      for await (const batch of snapshot.rawEntities()) {
        await loader.add(batch.map((e) => ({ ...splitEntityKey(e.key), meta: decodeMeta(e.meta), metaBytes: e.meta, state: e.state })))
        entities += batch.length
      }
    } finally {
      await snapshot.close()
    }
    const result = await loader.finish({ vv: a.versionVector, feedSeq: a.feedCursor })
    expect(result.entities).toBe(entities)
    expect(await derived(kvB)).toEqual(await derived(kvA))

    // The loaded store works as a store: counts, feed, conflicts, reads.
    const loaded = await open('c1c2c3c4c5c6c7c8', kvB)
    expect(loaded.entityCounts).toEqual(a.entityCounts)
    expect(loaded.versionVector).toEqual(a.versionVector)
    expect(loaded.feedCursor).toBe(a.feedCursor)
    expect(await loaded.conflicts()).toEqual(await a.conflicts())
    expect((await loaded.changes('items', 0, 1000)).changes).toEqual((await a.changes('items', 0, 1000)).changes)
    // Without a log, the loaded store's history says its changes came without their records.
    const [first] = (await loaded.list('items', { limit: 1 })).items
    const history = await loaded.history('items', first?.id as string, { limit: 10 })
    expect(history.items).toEqual([])
    expect(history.truncated).toEqual({ before: first?.version, reason: 'log-floor' })
    await loaded.close()
    await a.close()
    await b.close()
  })

  it('gives an entity without a usable feed position a new one after the others, and refuses bad names', async () => {
    const a = await open('a1a2a3a4a5a6a7a8')
    await a.write([
      { op: 'put', ns: 'x', id: '1', value: { n: 1 } },
      { op: 'put', ns: 'x', id: '2', value: { n: 2 } },
    ])
    const raw = []
    for await (const e of a.entities()) raw.push({ ns: e.ns, id: e.id, meta: e.meta, state: e.state })
    const kv = new MemoryKvStore()
    await kv.open()
    const loader = new BulkLoader(kv)
    await expect(loader.add([{ ...(raw[0] as (typeof raw)[0]), ns: 'Bad NS' }])).rejects.toMatchObject({ code: 'INVALID_ID' })
    await loader.add([raw[0] as (typeof raw)[0], { ...(raw[1] as (typeof raw)[0]), meta: { ...(raw[1] as (typeof raw)[0]).meta, feedSeq: (raw[0] as (typeof raw)[0]).meta.feedSeq } }])
    await loader.finish({ vv: a.versionVector, feedSeq: 10 })
    const loaded = await open('c1c2c3c4c5c6c7c8', kv)
    expect((await loaded.changes('x', 0, 10)).changes.map((c) => [c.id, c.cursor])).toEqual([
      ['1', (raw[0] as (typeof raw)[0]).meta.feedSeq],
      ['2', 11],
    ])
    expect(loaded.feedCursor).toBe(11)
    // A bulk load is for an empty store only.
    await expect(new BulkLoader(kv).add([])).rejects.toMatchObject({ code: 'STORE_NOT_EMPTY' })
    await loaded.close()
    await a.close()
  })
})
