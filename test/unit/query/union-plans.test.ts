import { describe, expect, it } from 'vitest'
import { MemoryKvStore } from '../../../daemon/storage/index.ts'
import { EntityStore } from '../../../daemon/store/entity-store.ts'
import { silentLogger } from '../../helpers/mesh-node.ts'

/** `$in` and `$or` served by several index ranges (docs/queries.md, Plans): explain, order, pages, dedup. */
describe('union plans', () => {
  it('an $in reads a range per value and an $or the ranges of its branches: merged in the sort order, each entity once, page after page', async () => {
    const store = new EntityStore({ kv: new MemoryKvStore(), nodeId: 'aaaaaaaaaaaaaaaa', logger: silentLogger })
    await store.open()
    try {
      await store.indexes.create('t', 'byStatusN', ['status', 'n:desc'])
      await store.indexes.create('t', 'byOwner', ['owner'])
      const statuses = ['open', 'closed', 'draft']
      await store.write(Array.from({ length: 30 }, (_, i) => ({ op: 'put' as const, ns: 't', id: `e${String(i).padStart(2, '0')}`, value: { status: statuses[i % 3] as string, n: (i * 7) % 10, owner: i % 4 === 0 ? 'ann' : 'bob' } })))
      await store.indexes.whenBuilt()

      const inQuery = { where: { status: { $in: ['open', 'draft'] } }, sort: ['n:desc'], limit: 4, explain: true }
      const first = await store.indexes.query('t', inQuery)
      expect(first.plan).toMatchObject({ type: 'index', index: 'byStatusN', ranges: 2, equalityFields: 1, order: 'index' })
      // Merged in order: a page examines its entities and one more per range, not every match.
      expect(first.plan?.entitiesExamined).toBeLessThanOrEqual(4 + 1 + 2)
      const all: { id: string; n: number }[] = []
      let cursor: string | undefined
      do {
        const page = await store.indexes.query('t', { ...inQuery, ...(cursor && { cursor }) })
        all.push(...(page.items ?? []).map((e) => ({ id: e.id, n: e.value.n as number })))
        cursor = page.next
      } while (cursor !== undefined)
      const { items: scanned } = await store.list('t', { limit: 100 })
      const expected = scanned
        .filter((e) => e.value.status !== 'closed')
        .map((e) => ({ id: e.id, n: e.value.n as number }))
        .sort((a, b) => b.n - a.n || (a.id < b.id ? 1 : -1))
      expect(all).toEqual(expected)

      // An $or of branches on two indexes; an entity both branches find comes once.
      const or = await store.indexes.query('t', { where: { $or: [{ status: 'open' }, { owner: 'ann' }] }, limit: 100, explain: true })
      expect(or.plan).toMatchObject({ type: 'index', index: 'byStatusN+byOwner', ranges: 2, order: 'memory' })
      const ids = (or.items ?? []).map((e) => e.id)
      expect(ids).toEqual(scanned.filter((e) => e.value.status === 'open' || e.value.owner === 'ann').map((e) => e.id))
      expect((await store.indexes.query('t', { where: { $or: [{ status: 'open' }, { owner: 'ann' }] }, count: true })).count).toBe(ids.length)
    } finally {
      await store.close()
    }
  })
})
