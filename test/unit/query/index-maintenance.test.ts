/**
 * Every path that writes an entity's state keeps its index entries in the same batch
 * (docs/queries.md, Indexes): snapshot catch-up, a full resync (wipe, then snapshot), resolves,
 * tombstone purges; builds over existing data resume after a restart; config indexes follow the
 * config; `verify` finds an entry that disagrees.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { EntitySnapshot } from '../../../crdt/index.ts'
import { MemoryKvStore } from '../../../daemon/storage/index.ts'
import { EntityStore, type EntityStoreOptions } from '../../../daemon/store/entity-store.ts'
import { BUILD_STEP_ENTITIES } from '../../../daemon/store/index-jobs.ts'
import { indexCatalogRecord } from '../../../daemon/store/indexes.ts'
import { indexPrefix } from '../../../daemon/store/keys.ts'
import { silentLogger } from '../../helpers/mesh-node.ts'

const open: EntityStore[] = []
afterEach(async () => {
  for (const s of open.splice(0)) await s.close()
})

async function store(nodeId: string, kv = new MemoryKvStore(), options: EntityStoreOptions = {}): Promise<EntityStore> {
  const s = new EntityStore({ kv, nodeId, logger: silentLogger }, options)
  await s.open()
  open.push(s)
  return s
}

async function snapshotsOf(from: EntityStore): Promise<EntitySnapshot[]> {
  const out: EntitySnapshot[] = []
  for await (const e of from.entities()) {
    const { vv, heads, fieldHeads, updatedAt, incarnation } = e.meta
    out.push({ ns: e.ns, id: e.id, state: e.state, vv, heads, fieldHeads, updatedAt, ...(incarnation && { incarnation }) })
  }
  return out
}

async function ids(s: EntityStore, where: Record<string, unknown>): Promise<string[]> {
  const answer = await s.indexes.query('ns', { where, explain: true, limit: 1000 })
  expect(answer.plan?.type).toBe('index')
  return (answer.items ?? []).map((i) => i.id)
}

async function verifyAll(s: EntityStore): Promise<void> {
  for (const i of s.indexes.list()) expect(await s.indexes.verify(i.ns, i.name), i.name).toMatchObject({ ok: true, missing: [], extra: [] })
}

describe('index maintenance on every write path', () => {
  it('snapshot catch-up and a full resync (wipe, then snapshot) move entries with the entities', async () => {
    const a = await store('aaaa')
    const b = await store('bbbb')
    await b.indexes.create('ns', 'byColor', ['color'])
    await b.write([{ op: 'put', ns: 'ns', id: 'old', value: { color: 'red' } }])
    await a.write([
      { op: 'put', ns: 'ns', id: 'x', value: { color: 'red' } },
      { op: 'put', ns: 'ns', id: 'y', value: { color: 'blue' } },
    ])
    await b.applySnapshot(await snapshotsOf(a))
    await b.completeSnapshot(a.versionVector)
    expect(await ids(b, { color: 'red' })).toEqual(['old', 'x'])
    await verifyAll(b)
    await b.wipeNamespace('ns')
    expect(await ids(b, { color: 'red' })).toEqual([])
    await verifyAll(b)
    await b.applySnapshot(await snapshotsOf(a))
    expect(await ids(b, { color: 'red' })).toEqual(['x'])
    expect(b.indexes.get('ns', 'byColor').state).toBe('ready')
    await verifyAll(b)
  })

  it('conflict winners and resolves, deletes and tombstone purges', async () => {
    const a = await store('aaaa')
    const b = await store('bbbb')
    await a.indexes.create('ns', 'byColor', ['color'])
    await a.write([{ op: 'put', ns: 'ns', id: 'x', value: { color: 'red' } }])
    for await (const c of a.changeLog('aaaa', 0)) await b.applyRemote([c])
    await a.write([{ op: 'patch', ns: 'ns', id: 'x', value: { color: 'green' } }])
    await b.write([{ op: 'patch', ns: 'ns', id: 'x', value: { color: 'blue' } }])
    const fromB = []
    for await (const c of b.changeLog('bbbb', 0)) fromB.push(c)
    await a.applyRemote(fromB)
    const winner = (await a.get('ns', 'x')).value.color as string
    expect(await ids(a, { color: winner })).toEqual(['x'])
    await verifyAll(a)
    await a.write([{ op: 'resolve', ns: 'ns', id: 'x', value: { color: 'purple' } }])
    expect(await ids(a, { color: 'purple' })).toEqual(['x'])
    expect(await ids(a, { color: winner })).toEqual([])
    await a.write([{ op: 'delete', ns: 'ns', id: 'x' }])
    expect(await ids(a, { color: 'purple' })).toEqual([])
    for await (const t of a.tombstones('ns')) await a.purgeTombstones([t])
    expect(await a.entityState('ns', 'x')).toBeUndefined()
    await verifyAll(a)
  })

  it('builds over existing entities a step at a time, and a restart resumes a build left halfway', async () => {
    const kv = new MemoryKvStore()
    const n = BUILD_STEP_ENTITIES * 2 + 7
    let s = await store('aaaa', kv)
    for (let i = 0; i < n; i += 100) {
      await s.write(Array.from({ length: Math.min(100, n - i) }, (_, k) => ({ op: 'put' as const, ns: 'ns', id: `e${String(i + k).padStart(5, '0')}`, value: { n: (i + k) % 10 } })))
    }
    // Close right after the first build step: the build is left halfway.
    await s.indexes.create('ns', 'byN', ['n'])
    await s.close()
    open.splice(open.indexOf(s), 1)
    await kv.open()
    const left = indexCatalogRecord.decode(await kv.get(indexCatalogRecord.key)).ns?.byN
    expect(left).toMatchObject({ state: 'building' })
    expect(left?.built).toBeLessThan(n)
    await kv.close()
    s = await store('aaaa', kv)
    await s.indexes.whenBuilt()
    expect(s.indexes.get('ns', 'byN')).toMatchObject({ state: 'ready', built: n, total: n })
    expect(await ids(s, { n: 3 })).toHaveLength(Math.ceil((n - 3) / 10))
    await verifyAll(s)
  })

  it('config indexes are created, rebuilt when their fields change and dropped when removed; API ones stay', async () => {
    const kv = new MemoryKvStore()
    let s = await store('aaaa', kv, { indexes: { ns: { byA: [{ path: 'a', dir: 'asc' }] } } })
    await s.write([{ op: 'put', ns: 'ns', id: 'x', value: { a: 1, b: 2 } }])
    await s.indexes.create('ns', 'mine', ['b'])
    await expect(s.indexes.drop('ns', 'byA')).rejects.toMatchObject({ code: 'INDEX_CONFLICT' })
    await s.close()
    open.splice(open.indexOf(s), 1)
    s = await store('aaaa', kv, { indexes: { ns: { byA: [{ path: 'b', dir: 'desc' }] } } })
    await s.indexes.whenBuilt()
    expect(s.indexes.list('ns').map((i) => [i.name, i.source, i.fields])).toEqual([
      ['byA', 'config', [{ path: 'b', dir: 'desc' }]],
      ['mine', 'api', [{ path: 'b', dir: 'asc' }]],
    ])
    await verifyAll(s)
    await s.close()
    open.splice(open.indexOf(s), 1)
    s = await store('aaaa', kv)
    expect(s.indexes.list('ns').map((i) => i.name)).toEqual(['mine'])
    let left = 0
    for await (const _ of kv.iterate({ gte: indexPrefix('ns', 'byA'), lt: indexPrefix('ns', 'byA') + '\uffff' })) left++
    expect(left).toBe(0)
  })

  it('verify finds an entry that disagrees with the entities', async () => {
    const kv = new MemoryKvStore()
    const s = await store('aaaa', kv)
    await s.indexes.create('ns', 'byA', ['a'])
    await s.write([{ op: 'put', ns: 'ns', id: 'x', value: { a: 1 } }])
    await verifyAll(s)
    await kv.batch([{ type: 'put', key: `${indexPrefix('ns', 'byA')}zzz`, value: Buffer.from('ghost') }], { sync: false })
    expect(await s.indexes.verify('ns', 'byA')).toMatchObject({ ok: false, extra: ['ghost'] })
  })
})
