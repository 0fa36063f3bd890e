import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { LevelKvStore } from '../../../daemon/storage/level-kv-store.ts'
import { MemoryKvStore } from '../../../daemon/storage/index.ts'
import { EntityStore, type HistoryPage } from '../../../daemon/store/entity-store.ts'
import { META_HISTORY } from '../../../daemon/store/keys.ts'
import { quietLogger, randomWrites, seededRandom } from '../../helpers/backup.ts'
import { allHistory } from '../../helpers/history.ts'
import { replicate } from '../../helpers/store-replication.ts'
import { useTempDirs } from '../../helpers/temp-dir.ts'

const tempDir = useTempDirs('each')
const GRACE = 10_000
let now = 1_000_000

function open(kv: LevelKvStore | MemoryKvStore, nodeId: string): EntityStore {
  return new EntityStore({ kv, nodeId, logger: quietLogger }, { now: () => now, tombstoneGraceMs: GRACE })
}

/** Removes what an earlier version did not write: the history index, its purge records and its format record. */
async function stripHistory(kv: LevelKvStore): Promise<number> {
  await kv.open()
  const keys: string[] = []
  for await (const [key] of kv.iterate()) if (key.startsWith('h\u0000') || key.startsWith('g\u0000') || key === META_HISTORY) keys.push(key)
  await kv.batch(
    keys.map((key) => ({ type: 'del' as const, key })),
    { sync: true },
  )
  await kv.close()
  return keys.length
}

/** Every entity's whole history (items and what is gone), by `ns/id`. */
async function histories(store: EntityStore, ids: readonly string[]): Promise<Record<string, { items: unknown; truncated: HistoryPage['truncated'] }>> {
  const out: Record<string, { items: unknown; truncated: HistoryPage['truncated'] }> = {}
  for (const key of ids) {
    const [ns, id] = key.split('/') as [string, string]
    const page: HistoryPage | string = await store.history(ns, id, { limit: 1 }).catch((error: { code: string }) => error.code)
    if (typeof page === 'string') out[key] = { items: page, truncated: undefined }
    else out[key] = { items: await allHistory(store, ns, id), truncated: page.truncated }
  }
  return out
}

describe('history index of a data dir written without one', () => {
  it('is built on open from the change log: the same histories, purges included, and verify agrees', { timeout: 60_000 }, async () => {
    const dir = await tempDir('meshsync-history-')
    const kv = new LevelKvStore(join(dir, 'db'))
    const a = open(kv, 'a1a2a3a4a5a6a7a8')
    await a.open()
    const b = open(new MemoryKvStore(), 'b1b2b3b4b5b6b7b8')
    await b.open()
    const rng = seededRandom(5)
    await randomWrites(a, rng, 120, ['items', 'notes'], 12)
    await replicate(a, b)
    await Promise.all([randomWrites(a, rng, 60, ['items', 'notes'], 12), randomWrites(b, rng, 60, ['items', 'notes'], 12)])
    await replicate(b, a)
    // Incarnations, and purges (one id written again after it).
    now += GRACE
    await randomWrites(a, rng, 40, ['items', 'notes'], 12)
    const gone: string[] = []
    for await (const t of a.tombstones()) if ((await a.purgeTombstones([t])) === 1) gone.push(`${t.ns}/${t.id}`)
    expect(gone.length).toBeGreaterThan(1)
    const recreated = gone.find((key) => key.startsWith('items/')) as string
    expect(recreated).toBeDefined()
    await a.write([{ op: 'put', ns: 'items', id: recreated.slice('items/'.length), value: { again: true } }])
    await b.close()

    const ids = [...new Set([...Array.from({ length: 12 }, (_, i) => [`items/e${i}`, `notes/e${i}`]).flat()])]
    const before = await histories(a, ids)
    expect(Object.values(before).some((h) => h.truncated?.reason === 'purged')).toBe(true)
    expect(before[recreated]).toMatchObject({ items: [{ values: { again: true } }], truncated: { reason: 'purged' } })
    expect(await a.verifyHistory()).toMatchObject({ ok: true })
    await a.close()

    expect(await stripHistory(new LevelKvStore(join(dir, 'db')))).toBeGreaterThan(0)
    const reopened = open(new LevelKvStore(join(dir, 'db')), 'a1a2a3a4a5a6a7a8')
    await reopened.open()
    try {
      expect(await histories(reopened, ids)).toEqual(before)
      const verify = await reopened.verifyHistory()
      expect(verify).toMatchObject({ ok: true, missing: [], extra: [] })
      expect(verify.purged).toBeGreaterThan(0)
      // Writes go on as before, with their entries.
      await reopened.write([{ op: 'patch', ns: 'items', id: 'e1', value: { after: 1 } }])
      expect((await reopened.history('items', 'e1', { limit: 1 })).items[0]?.values).toEqual({ after: 1 })
    } finally {
      await reopened.close()
    }
  })

  it('is built once: a store that has it opens without reading the log again', async () => {
    const kv = new MemoryKvStore()
    const a = open(kv, 'a1a2a3a4a5a6a7a8')
    await a.open()
    await a.write([{ op: 'put', ns: 'n', id: 'x', value: { v: 1 } }])
    await a.close()
    // An entry removed behind the store's back stays removed: nothing rebuilds a built index.
    await kv.open()
    const keys: string[] = []
    for await (const [key] of kv.iterate({ gte: 'h\u0000', lt: 'h\u0001' })) keys.push(key)
    await kv.batch(keys.map((key) => ({ type: 'del' as const, key })), { sync: true })
    await kv.close()
    const again = open(kv, 'a1a2a3a4a5a6a7a8')
    await again.open()
    expect(await again.verifyHistory()).toMatchObject({ ok: false, missing: ['n/x a1a2a3a4a5a6a7a8:1'] })
    await again.close()
  })
})
