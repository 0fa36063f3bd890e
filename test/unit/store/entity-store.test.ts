import { pino } from 'pino'
import { afterEach, describe, expect, it, vi } from 'vitest'
import * as Y from 'yjs'
import type { ChangeRecord } from '../../../crdt/index.ts'
import { MemoryKvStore } from '../../../daemon/storage/index.ts'
import { EntityStore, type CommittedChange } from '../../../daemon/store/entity-store.ts'

const logger = pino({ level: 'silent' })
const stores: EntityStore[] = []

async function openStore(nodeId = 'aaaa', kv = new MemoryKvStore(), options = {}): Promise<{ store: EntityStore; kv: MemoryKvStore }> {
  const store = new EntityStore({ kv, nodeId, logger }, options)
  await store.open()
  stores.push(store)
  return { store, kv }
}

async function changesOf(store: EntityStore, origin: string): Promise<ChangeRecord[]> {
  const out: ChangeRecord[] = []
  for await (const c of store.changeLog(origin, 0)) out.push(c)
  return out
}

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close()
})

describe('EntityStore local writes', () => {
  it('PUT replaces, PATCH merges, null removes; versions count changes', async () => {
    const { store } = await openStore()
    const [a] = await store.write([{ op: 'put', ns: 'items', id: 'x', value: { a: 1, b: 'two' } }])
    expect(a?.value).toEqual({ a: 1, b: 'two' })
    expect(a?.version).toEqual({ aaaa: 1 })
    await store.write([{ op: 'patch', ns: 'items', id: 'x', value: { b: null, c: [1, { d: true }] } }])
    expect((await store.get('items', 'x')).value).toEqual({ a: 1, c: [1, { d: true }] })
    await store.write([{ op: 'put', ns: 'items', id: 'x', value: { z: 0 } }])
    const got = await store.get('items', 'x')
    expect(got.value).toEqual({ z: 0 })
    expect(got.version).toEqual({ aaaa: 3 })
    expect(store.versionVector).toEqual({ aaaa: 3 })
  })

  it('an unchanged PUT makes no change and no version bump', async () => {
    const { store } = await openStore()
    await store.write([{ op: 'put', ns: 'items', id: 'x', value: { a: 1 } }])
    const [again] = await store.write([{ op: 'put', ns: 'items', id: 'x', value: { a: 1 } }])
    expect(again?.version).toEqual({ aaaa: 1 })
    expect(await changesOf(store, 'aaaa')).toHaveLength(1)
  })

  it('delete is a tombstone; a later write starts from an empty record', async () => {
    const { store } = await openStore()
    await store.write([{ op: 'put', ns: 'items', id: 'x', value: { a: 1, b: 2 } }])
    const [deleted] = await store.write([{ op: 'delete', ns: 'items', id: 'x' }])
    expect(deleted?.deleted).toBe(true)
    await expect(store.get('items', 'x')).rejects.toMatchObject({ code: 'ENTITY_NOT_FOUND' })
    await expect(store.write([{ op: 'delete', ns: 'items', id: 'x' }])).rejects.toMatchObject({ code: 'ENTITY_NOT_FOUND' })
    expect(store.entityCounts).toEqual({})
    await store.write([{ op: 'patch', ns: 'items', id: 'x', value: { c: 3 } }])
    expect((await store.get('items', 'x')).value).toEqual({ c: 3 })
    expect(store.entityCounts).toEqual({ items: 1 })
  })

  it('a batch is atomic: one refused op leaves no trace, other writers of the same group commit', async () => {
    const { store } = await openStore()
    await store.write([{ op: 'put', ns: 'items', id: 'keep', value: { v: 0 } }])
    const bad = store.write([
      { op: 'put', ns: 'items', id: 'a', value: { v: 1 } },
      { op: 'patch', ns: 'items', id: 'keep', value: { v: 9 } },
      { op: 'delete', ns: 'items', id: 'missing' },
    ])
    const good = store.write([{ op: 'put', ns: 'items', id: 'b', value: { v: 2 } }])
    await expect(bad).rejects.toMatchObject({ code: 'ENTITY_NOT_FOUND' })
    await expect(good).resolves.toHaveLength(1)
    await expect(store.get('items', 'a')).rejects.toMatchObject({ code: 'ENTITY_NOT_FOUND' })
    expect((await store.get('items', 'keep')).value).toEqual({ v: 0 })
    expect(store.versionVector).toEqual({ aaaa: 2 })
    expect((await changesOf(store, 'aaaa')).map((c) => c.seq)).toEqual([1, 2])
  })

  it('groups concurrent writes into few fsynced batches and answers only after the batch', async () => {
    const { store, kv } = await openStore()
    const batch = vi.spyOn(kv, 'batch')
    const writes = Array.from({ length: 200 }, (_, i) => store.write([{ op: 'put', ns: 'g', id: `e${i}`, value: { i } }]))
    await Promise.all(writes)
    expect(batch.mock.calls.length).toBeLessThan(10)
    expect(batch.mock.calls.every(([, options]) => options.sync)).toBe(true)
    expect(store.entityCounts).toEqual({ g: 200 })
  })

  it('a failed commit fails its group, rolls back, and the next write reuses no sequence number', async () => {
    const { store, kv } = await openStore()
    await store.write([{ op: 'put', ns: 'items', id: 'x', value: { v: 1 } }])
    const clientBefore = store.clientId
    const spy = vi.spyOn(kv, 'batch').mockRejectedValueOnce(Object.assign(new Error('disk full'), { code: 'STORAGE_FAILURE' }))
    await expect(store.write([{ op: 'patch', ns: 'items', id: 'x', value: { v: 2 } }])).rejects.toMatchObject({ code: 'STORAGE_FAILURE' })
    expect((await store.get('items', 'x')).value).toEqual({ v: 1 })
    expect(store.versionVector).toEqual({ aaaa: 1 })
    expect(store.clientId).not.toBe(clientBefore)
    spy.mockRestore()
    await store.write([{ op: 'patch', ns: 'items', id: 'x', value: { v: 3 } }])
    expect((await store.get('items', 'x')).value).toEqual({ v: 3 })
    expect((await changesOf(store, 'aaaa')).map((c) => c.seq)).toEqual([1, 2])
  })

  it('never reuses a Yjs clientID across restarts', async () => {
    const kv = new MemoryKvStore()
    const seen = new Set<number>()
    for (let i = 0; i < 5; i++) {
      const store = new EntityStore({ kv, nodeId: 'aaaa', logger })
      await store.open()
      expect(seen.has(store.clientId)).toBe(false)
      seen.add(store.clientId)
      await store.write([{ op: 'patch', ns: 'n', id: 'x', value: { [`k${i}`]: i } }])
      await store.close()
    }
    const store = new EntityStore({ kv, nodeId: 'aaaa', logger })
    await store.open()
    stores.push(store)
    expect((await store.get('n', 'x')).value).toEqual({ k0: 0, k1: 1, k2: 2, k3: 3, k4: 4 })
    expect(store.versionVector).toEqual({ aaaa: 5 })
  })

  it('text splices apply in order; an out-of-range splice is refused with nothing applied', async () => {
    const { store } = await openStore()
    await store.write([{ op: 'text', ns: 'docs', id: 'd', name: 'body', splices: [[0, 0, 'hello world'], [5, 6, ''], [5, 0, '!']] }])
    expect((await store.getText('docs', 'd', 'body')).text).toBe('hello!')
    await expect(store.write([{ op: 'text', ns: 'docs', id: 'd', name: 'body', splices: [[0, 0, 'x'], [10, 1, '']] }])).rejects.toMatchObject({
      code: 'TEXT_RANGE',
    })
    expect((await store.getText('docs', 'd', 'body')).text).toBe('hello!')
  })

  it('a job refused halfway through its edits leaves no trace, and the rest of its group commits', async () => {
    const { store } = await openStore()
    await store.write([{ op: 'text', ns: 'docs', id: 'd', name: 'body', splices: [[0, 0, 'a\u{1F600}b']] }])
    // The second splice lands inside the emoji's surrogate pair: only the text itself can tell.
    const bad = store.write([
      { op: 'text', ns: 'docs', id: 'd', name: 'body', splices: [[0, 0, 'X']] },
      { op: 'text', ns: 'docs', id: 'd', name: 'body', splices: [[3, 0, 'Y']] },
    ])
    const good = store.write([{ op: 'put', ns: 'docs', id: 'other', value: { ok: true } }])
    await expect(bad).rejects.toMatchObject({ code: 'TEXT_RANGE' })
    await expect(good).resolves.toHaveLength(1)
    expect((await store.getText('docs', 'd', 'body')).text).toBe('a\u{1F600}b')
    expect((await changesOf(store, 'aaaa')).map((c) => c.id)).toEqual(['d', 'other'])
  })

  it('applies a Yjs client update as a local change, and an empty one as nothing', async () => {
    const { store } = await openStore()
    const client = new Y.Doc()
    await store.write([{ op: 'yjs', ns: 'y', id: 'e', update: Y.encodeStateAsUpdate(client) }])
    await expect(store.get('y', 'e')).rejects.toMatchObject({ code: 'ENTITY_NOT_FOUND' })
    client.getMap('data').set('title', 'hi')
    client.getText('body').insert(0, 'text')
    const [view] = await store.write([{ op: 'yjs', ns: 'y', id: 'e', update: Y.encodeStateAsUpdate(client) }])
    expect(view?.value).toEqual({ title: 'hi' })
    expect((await store.getText('y', 'e', 'body')).text).toBe('text')
    const [change] = await changesOf(store, 'aaaa')
    expect(change?.fields).toEqual(['title'])
    expect(change?.texts).toEqual(['body'])
    await expect(store.write([{ op: 'yjs', ns: 'y', id: 'e', update: new Uint8Array([1, 2, 3]) }])).rejects.toMatchObject({ code: 'INVALID_UPDATE' })
  })

  it('keeps working with a doc cache smaller than the working set', async () => {
    const { store } = await openStore('aaaa', new MemoryKvStore(), { docCacheSize: 2 })
    for (let round = 0; round < 3; round++) {
      await Promise.all(Array.from({ length: 10 }, (_, i) => store.write([{ op: 'text', ns: 't', id: `e${i}`, name: 'x', splices: [[round, 0, String(round)]] }])))
    }
    for (let i = 0; i < 10; i++) expect((await store.getText('t', `e${i}`, 'x')).text).toBe('012')
  })
})

describe('EntityStore reads', () => {
  it('lists live entities by prefix with pages', async () => {
    const { store } = await openStore()
    await store.write(Array.from({ length: 25 }, (_, i) => ({ op: 'put' as const, ns: 'l', id: `k${String(i).padStart(2, '0')}`, value: { i } })))
    await store.write([{ op: 'delete', ns: 'l', id: 'k03' }])
    await store.write([{ op: 'put', ns: 'other', id: 'k00', value: {} }])
    const seen: string[] = []
    let after: string | undefined
    for (;;) {
      const page = await store.list('l', { limit: 7, ...(after !== undefined && { after }) })
      seen.push(...page.items.map((e) => e.id))
      if (page.next === undefined) break
      after = page.next
    }
    expect(seen).toHaveLength(24)
    expect(seen).not.toContain('k03')
    expect((await store.list('l', { prefix: 'k1', limit: 100 })).items.map((e) => e.id)).toEqual(
      Array.from({ length: 10 }, (_, i) => `k1${i}`),
    )
  })

  it('the change feed has the latest change per entity, deletes included, and resumes from a cursor', async () => {
    const { store } = await openStore()
    await store.write([{ op: 'put', ns: 'f', id: 'a', value: { v: 1 } }])
    await store.write([{ op: 'put', ns: 'f', id: 'b', value: { v: 1 } }])
    const first = await store.changes('f', 0, 100)
    expect(first.changes.map((c) => c.id)).toEqual(['a', 'b'])
    await store.write([{ op: 'patch', ns: 'f', id: 'a', value: { v: 2 } }])
    await store.write([{ op: 'delete', ns: 'f', id: 'b' }])
    const next = await store.changes('f', first.cursor, 100)
    expect(next.changes.map((c) => [c.id, c.op, c.value])).toEqual([
      ['a', 'upsert', { v: 2 }],
      ['b', 'delete', undefined],
    ])
    expect((await store.changes('f', next.cursor, 100)).changes).toEqual([])
    expect((await store.changes('f', 0, 100)).changes.map((c) => c.id)).toEqual(['a', 'b'])
  })

  it('announces committed changes', async () => {
    const { store } = await openStore()
    const seen: CommittedChange[] = []
    store.on('change', (c) => seen.push(c))
    await store.write([{ op: 'put', ns: 'e', id: 'x', value: { v: 1 } }])
    expect(seen.map((c) => [c.change.origin, c.change.seq, c.remote])).toEqual([['aaaa', 1, false]])
  })
})

describe('EntityStore remote changes', () => {
  it('a new entity written without a Y.Doc (here and on the receiving node) stores what the Y.Doc path stores', async () => {
    const { store: a } = await openStore('aaaa')
    const { store: b } = await openStore('bbbb')
    const record = { s: 'x', n: 1.5, nested: { k: [1, null, 'y'] }, z: null }
    await a.write([{ op: 'put', ns: 'n', id: 'fast', value: record }])
    // The Y.Doc path, for comparison: the same record set on an empty document by the same client.
    const doc = new Y.Doc()
    doc.clientID = a.clientId
    doc.transact(() => {
      for (const [k, v] of Object.entries(record)) doc.getMap('data').set(k, v)
    })
    expect(await a.entityState('n', 'fast')).toEqual(Y.encodeStateAsUpdate(doc))
    await b.applyRemote(await changesOf(a, 'aaaa'))
    expect(await b.entityState('n', 'fast')).toEqual(Y.encodeStateAsUpdate(doc))
    expect((await b.get('n', 'fast')).value).toEqual(record)
    // Later edits on either side continue from that state and converge.
    await b.write([{ op: 'patch', ns: 'n', id: 'fast', value: { s: 'from b' } }])
    await a.write([{ op: 'text', ns: 'n', id: 'fast', name: 't', splices: [[0, 0, 'hi']] }])
    await a.applyRemote(await changesOf(b, 'bbbb'))
    await b.applyRemote((await changesOf(a, 'aaaa')).slice(1))
    for (const s of [a, b]) {
      expect((await s.get('n', 'fast')).value).toEqual({ ...record, s: 'from b' })
      expect((await s.getText('n', 'fast', 't')).text).toBe('hi')
    }
    const sa = new Y.Doc()
    Y.applyUpdate(sa, (await a.entityState('n', 'fast')) as Uint8Array)
    const sb = new Y.Doc()
    Y.applyUpdate(sb, (await b.entityState('n', 'fast')) as Uint8Array)
    expect(Y.encodeStateVector(sa)).toEqual(Y.encodeStateVector(sb))
  })

  it('converges two nodes that edit concurrently, idempotently and in causal order', async () => {
    const { store: a } = await openStore('aaaa')
    const { store: b } = await openStore('bbbb')
    await a.write([{ op: 'put', ns: 'n', id: 'x', value: { shared: 'a', onlyA: 1 } }])
    await b.applyRemote(await changesOf(a, 'aaaa'))
    await a.write([{ op: 'patch', ns: 'n', id: 'x', value: { shared: 'a2' } }])
    await b.write([{ op: 'patch', ns: 'n', id: 'x', value: { shared: 'b2', onlyB: 2 } }])
    await b.write([{ op: 'text', ns: 'n', id: 'x', name: 't', splices: [[0, 0, 'from b']] }])
    await a.write([{ op: 'text', ns: 'n', id: 'x', name: 't', splices: [[0, 0, 'from a ']] }])

    const fromA = await changesOf(a, 'aaaa')
    const fromB = await changesOf(b, 'bbbb')
    const resB = await b.applyRemote(fromA)
    expect(resB).toMatchObject({ applied: 2, duplicates: 1, deferred: [] })
    const resA = await a.applyRemote([...fromB, ...fromB])
    expect(resA).toMatchObject({ applied: 2, duplicates: 2, deferred: [] })

    const [va, vb] = [await a.get('n', 'x'), await b.get('n', 'x')]
    expect(va.value).toEqual(vb.value)
    expect(va.version).toEqual({ aaaa: 3, bbbb: 2 })
    expect(vb.version).toEqual(va.version)
    expect(a.versionVector).toEqual(b.versionVector)
    expect((await a.getText('n', 'x', 't')).text).toBe((await b.getText('n', 'x', 't')).text)
    expect(await a.textNames('n', 'x')).toEqual({ texts: ['t'], version: va.version })
    expect(await b.textNames('n', 'x')).toEqual(await a.textNames('n', 'x'))
  })

  it('defers a change whose predecessors are missing and applies it once they arrive', async () => {
    const { store: a } = await openStore('aaaa')
    const { store: b } = await openStore('bbbb')
    await a.write([{ op: 'text', ns: 'n', id: 'x', name: 't', splices: [[0, 0, 'one ']] }])
    await a.write([{ op: 'text', ns: 'n', id: 'x', name: 't', splices: [[4, 0, 'two']] }])
    const [c1, c2] = await changesOf(a, 'aaaa')
    const early = await b.applyRemote([c2 as ChangeRecord])
    expect(early.applied).toBe(0)
    expect(early.deferred).toHaveLength(1)
    await expect(b.get('n', 'x')).rejects.toMatchObject({ code: 'ENTITY_NOT_FOUND' })
    const late = await b.applyRemote([c1 as ChangeRecord, c2 as ChangeRecord])
    expect(late.applied).toBe(2)
    expect((await b.getText('n', 'x', 't')).text).toBe('one two')
  })

  it('refuses a change whose Yjs update does not parse, and keeps serving', async () => {
    const { store: a } = await openStore('aaaa')
    const { store: b } = await openStore('bbbb')
    await a.write([{ op: 'put', ns: 'n', id: 'x', value: { v: 1 } }])
    const [good] = await changesOf(a, 'aaaa')
    const broken = { ...(good as ChangeRecord), update: new Uint8Array([255, 255, 255, 1, 2, 3]) }
    const result = await b.applyRemote([broken])
    expect(result.invalid).toHaveLength(1)
    expect(b.versionVector).toEqual({})
    await b.applyRemote([good as ChangeRecord])
    expect((await b.get('n', 'x')).value).toEqual({ v: 1 })
  })

  it('an update concurrent with a delete wins', async () => {
    const { store: a } = await openStore('aaaa')
    const { store: b } = await openStore('bbbb')
    await a.write([{ op: 'put', ns: 'n', id: 'x', value: { v: 1, w: 1 } }])
    await b.applyRemote(await changesOf(a, 'aaaa'))
    await a.write([{ op: 'delete', ns: 'n', id: 'x' }])
    await b.write([{ op: 'patch', ns: 'n', id: 'x', value: { v: 2 } }])
    await b.applyRemote(await changesOf(a, 'aaaa'))
    await a.applyRemote(await changesOf(b, 'bbbb'))
    for (const s of [a, b]) expect((await s.get('n', 'x')).value).toEqual({ v: 2, w: 1 })
  })
})
