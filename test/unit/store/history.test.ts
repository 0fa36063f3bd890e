import { afterEach, describe, expect, it } from 'vitest'
import { jsonEqual, type JsonRecord, type JsonValue } from '../../../crdt/index.ts'
import { TombstoneCollector } from '../../../daemon/replication/tombstone-gc.ts'
import { MemoryKvStore } from '../../../daemon/storage/index.ts'
import { EntityStore, type HistoryItem, type LocalOp } from '../../../daemon/store/entity-store.ts'
import { quietLogger, seededRandom } from '../../helpers/backup.ts'
import { allHistory } from '../../helpers/history.ts'
import { replicate } from '../../helpers/store-replication.ts'

const GRACE = 10_000
let now = 1_000_000
const stores: EntityStore[] = []

async function node(nodeId: string, kv = new MemoryKvStore()): Promise<EntityStore> {
  const store = new EntityStore({ kv, nodeId, logger: quietLogger }, { now: () => now, tombstoneGraceMs: GRACE })
  await store.open()
  stores.push(store)
  return store
}

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close()
})

/** The parts of an item that say what the change was (no cursor). */
function summary(item: HistoryItem): Record<string, unknown> {
  const { cursor: _cursor, time: _time, ...rest } = item
  return rest
}

describe('entity history', () => {
  it('lists the changes newest first: origin, seq, time, op, version, fields with the values written, texts', async () => {
    const a = await node('aaaa')
    now = 1_000_000
    await a.write([{ op: 'put', ns: 'n', id: 'x', value: { title: 'one', tags: ['a'], n: 1 } }])
    now += 5
    await a.write([{ op: 'patch', ns: 'n', id: 'x', value: { title: 'two', n: null } }])
    await a.write([{ op: 'text', ns: 'n', id: 'x', name: 'body', splices: [[0, 0, 'hello']] }])
    // Overwrites: Yjs does not name the key of an item that replaces another (read back from the document).
    await a.write([{ op: 'put', ns: 'n', id: 'x', value: { title: 'three', tags: { deep: [1, 2] } } }])
    await a.write([{ op: 'delete', ns: 'n', id: 'x' }])
    await a.write([{ op: 'put', ns: 'n', id: 'other', value: { v: 1 } }])
    const page = await a.history('n', 'x', { limit: 10 })
    expect(page.items.map(summary)).toEqual([
      { origin: 'aaaa', seq: 5, op: 'delete', version: { aaaa: 5 }, fields: [], values: {}, texts: [] },
      { origin: 'aaaa', seq: 4, op: 'upsert', version: { aaaa: 4 }, fields: ['tags', 'title'], values: { tags: { deep: [1, 2] }, title: 'three' }, texts: [] },
      { origin: 'aaaa', seq: 3, op: 'upsert', version: { aaaa: 3 }, fields: [], values: {}, texts: ['body'] },
      { origin: 'aaaa', seq: 2, op: 'upsert', version: { aaaa: 2 }, fields: ['n', 'title'], values: { n: null, title: 'two' }, texts: [] },
      { origin: 'aaaa', seq: 1, op: 'upsert', version: { aaaa: 1 }, fields: ['n', 'tags', 'title'], values: { n: 1, tags: ['a'], title: 'one' }, texts: [] },
    ])
    expect(page.items.at(-1)?.time).toBe(new Date(1_000_000).toISOString())
    expect(page.items[0]?.time).toBe(new Date(1_000_005).toISOString())
    expect(page.next).toBeUndefined()
    expect(page.truncated).toBeUndefined()
  })

  it('pages with `after`; a bad cursor is INVALID_CURSOR; an entity with no history is ENTITY_NOT_FOUND', async () => {
    const a = await node('aaaa')
    for (let i = 0; i < 7; i++) await a.write([{ op: 'patch', ns: 'n', id: 'x', value: { i } }])
    const whole = await a.history('n', 'x', { limit: 100 })
    const seen: HistoryItem[] = []
    let after: string | undefined
    for (;;) {
      const page = await a.history('n', 'x', { limit: 3, after })
      seen.push(...page.items)
      if (page.next === undefined) break
      expect(page.items).toHaveLength(3)
      after = page.next
    }
    expect(seen).toEqual(whole.items)
    expect(whole.items.map((i) => i.seq)).toEqual([7, 6, 5, 4, 3, 2, 1])
    // A cursor past the end: an empty page.
    expect((await a.history('n', 'x', { limit: 3, after: whole.items.at(-1)?.cursor })).items).toEqual([])
    await expect(a.history('n', 'x', { limit: 3, after: 'nope' })).rejects.toMatchObject({ code: 'INVALID_CURSOR' })
    await expect(a.history('n', 'missing', { limit: 3 })).rejects.toMatchObject({ code: 'ENTITY_NOT_FOUND' })
    await expect(a.history('N!', 'x', { limit: 3 })).rejects.toMatchObject({ code: 'INVALID_NAMESPACE' })
  })

  it('marks concurrent changes, and is the same, in the same order, on every node', async () => {
    const [a, b, c] = [await node('aaaa'), await node('bbbb'), await node('cccc')]
    await a.write([{ op: 'put', ns: 'n', id: 'x', value: { v: 0 } }])
    for (const s of [b, c]) await replicate(a, s)
    // Three writers that do not see each other; b writes twice.
    await a.write([{ op: 'patch', ns: 'n', id: 'x', value: { v: 'a' } }])
    await b.write([{ op: 'patch', ns: 'n', id: 'x', value: { v: 'b' } }])
    await b.write([{ op: 'patch', ns: 'n', id: 'x', value: { w: 'b2' } }])
    await c.write([{ op: 'delete', ns: 'n', id: 'x' }])
    // Each node gets the others' changes in another order.
    await replicate(b, a)
    await replicate(c, a)
    await replicate(c, b)
    await replicate(a, b)
    await replicate(b, c)
    await replicate(a, c)
    // Then one write on top of everything.
    await c.write([{ op: 'resolve', ns: 'n', id: 'x', value: { v: 'final' } }])
    for (const s of [a, b]) await replicate(c, s)
    const histories = await Promise.all([a, b, c].map((s) => s.history('n', 'x', { limit: 100 })))
    expect(histories[1]).toEqual(histories[0])
    expect(histories[2]).toEqual(histories[0])
    const byDot = new Map((histories[0]?.items ?? []).map((i) => [`${i.origin}:${i.seq}`, i]))
    const dots = (i: HistoryItem | undefined): string[] => (i?.concurrentWith ?? []).map((d) => `${d.origin}:${d.seq}`)
    expect(dots(byDot.get('aaaa:2'))).toEqual(['bbbb:1', 'bbbb:2', 'cccc:1'])
    expect(dots(byDot.get('bbbb:1'))).toEqual(['aaaa:2', 'cccc:1'])
    expect(dots(byDot.get('bbbb:2'))).toEqual(['aaaa:2', 'cccc:1'])
    expect(dots(byDot.get('cccc:1'))).toEqual(['aaaa:2', 'bbbb:1', 'bbbb:2'])
    expect(byDot.get('cccc:2')?.concurrentCount).toBeUndefined()
    expect(byDot.get('aaaa:1')?.concurrentCount).toBeUndefined()
    expect(byDot.get('aaaa:2')?.concurrentCount).toBe(3)
    // Newest first: the resolve, then the concurrent ones, then the first write.
    const order = (histories[0]?.items ?? []).map((i) => `${i.origin}:${i.seq}`)
    expect(order[0]).toBe('cccc:2')
    expect(order.at(-1)).toBe('aaaa:1')
    expect(order.indexOf('bbbb:2')).toBeLessThan(order.indexOf('bbbb:1'))
    expect(byDot.get('cccc:2')?.values).toEqual({ v: 'final' })
    expect(byDot.get('bbbb:1')?.values).toEqual({ v: 'b' })
  })

  it('after a tombstone purge: what was purged is reported gone, and a new life of the id starts a new history', async () => {
    const a = await node('aaaa')
    await a.write([{ op: 'put', ns: 'n', id: 'x', value: { v: 1 } }])
    await a.write([{ op: 'patch', ns: 'n', id: 'x', value: { v: 2 } }])
    await a.write([{ op: 'delete', ns: 'n', id: 'x' }])
    expect((await a.history('n', 'x', { limit: 10 })).items).toHaveLength(3)
    for await (const t of a.tombstones('n')) expect(await a.purgeTombstones([t])).toBe(1)
    const purged = await a.history('n', 'x', { limit: 10 })
    expect(purged.items).toEqual([])
    expect(purged.truncated).toEqual({ before: { aaaa: 3 }, reason: 'purged' })
    // The log keeps the records (it relays them); the index says they were purged.
    expect(await a.verifyHistory()).toMatchObject({ ok: true, records: 3, entries: 0, purged: 3 })
    await a.write([{ op: 'put', ns: 'n', id: 'x', value: { v: 3 } }])
    const again = await a.history('n', 'x', { limit: 10 })
    expect(again.items.map((i) => [i.seq, i.values])).toEqual([[4, { v: 3 }]])
    expect(again.truncated).toEqual({ before: { aaaa: 3 }, reason: 'purged' })
    expect(await a.verifyHistory()).toMatchObject({ ok: true, records: 4, entries: 1, purged: 3 })
  })

  it('after a tombstone GC sweep on two nodes, both report the purged history gone, the same way', async () => {
    const SKEW = 1_000
    const a = await node('aaaa')
    const b = await node('bbbb')
    const gcA = new TombstoneCollector(a, () => ['bbbb'], quietLogger, { clockSkewMs: SKEW, now: () => now })
    const gcB = new TombstoneCollector(b, () => ['aaaa'], quietLogger, { clockSkewMs: SKEW, now: () => now })
    const session = async (): Promise<void> => {
      await replicate(a, b)
      await replicate(b, a)
      gcA.fromHello(b.nodeId, b.versionVector, gcB.hello())
      gcB.fromHello(a.nodeId, a.versionVector, gcA.hello())
    }
    await a.write([{ op: 'put', ns: 'n', id: 'x', value: { v: 1 } }])
    await a.write([{ op: 'put', ns: 'n', id: 'kept', value: { v: 1 } }])
    await session()
    await b.write([{ op: 'patch', ns: 'n', id: 'x', value: { w: 2 } }])
    await session()
    await a.write([{ op: 'delete', ns: 'n', id: 'x' }])
    await session()
    now += GRACE + SKEW
    await session()
    expect(await gcA.sweep()).toBe(1)
    expect(await gcB.sweep()).toBe(1)
    const [ha, hb] = await Promise.all([a.history('n', 'x', { limit: 10 }), b.history('n', 'x', { limit: 10 })])
    expect(hb).toEqual(ha)
    expect(ha).toEqual({ ns: 'n', id: 'x', items: [], truncated: { before: { aaaa: 3, bbbb: 1 }, reason: 'purged' } })
    // What was not purged keeps its history.
    expect((await a.history('n', 'kept', { limit: 10 })).items.map((i) => i.values)).toEqual([{ v: 1 }])
    for (const s of [a, b]) expect(await s.verifyHistory()).toMatchObject({ ok: true, purged: 3 })
  })

  it('changes a node took in a snapshot, without their records, are reported gone (log floor)', async () => {
    const a = await node('aaaa')
    const b = await node('bbbb')
    await a.write([{ op: 'put', ns: 'n', id: 'x', value: { v: 1 } }])
    await a.write([{ op: 'patch', ns: 'n', id: 'x', value: { v: 2 } }])
    // b catches up by snapshot: entity states, no change records.
    const snapshot = []
    for await (const e of a.entities()) snapshot.push({ ns: e.ns, id: e.id, state: e.state, vv: e.meta.vv, heads: e.meta.heads, fieldHeads: e.meta.fieldHeads, deleted: e.meta.deleted, updatedAt: e.meta.updatedAt })
    await b.applySnapshot(snapshot)
    await b.completeSnapshot(a.versionVector)
    const caught = await b.history('n', 'x', { limit: 10 })
    expect(caught.items).toEqual([])
    expect(caught.truncated).toEqual({ before: { aaaa: 2 }, reason: 'log-floor' })
    // Later changes come with their records; what came in the snapshot stays gone.
    await a.write([{ op: 'patch', ns: 'n', id: 'x', value: { v: 3 } }])
    await replicate(a, b)
    await b.write([{ op: 'patch', ns: 'n', id: 'x', value: { w: 1 } }])
    const later = await b.history('n', 'x', { limit: 10 })
    expect(later.items.map((i) => `${i.origin}:${i.seq}`)).toEqual(['bbbb:1', 'aaaa:3'])
    expect(later.items.map((i) => i.values)).toEqual([{ w: 1 }, { v: 3 }])
    expect(later.truncated).toEqual({ before: { aaaa: 2 }, reason: 'log-floor' })
    // The node that has every record reports nothing gone.
    expect((await a.history('n', 'x', { limit: 10 })).truncated).toBeUndefined()
  })

  it('reads back the values of changes made on an earlier incarnation of the id', async () => {
    const a = await node('aaaa')
    const b = await node('bbbb')
    await a.write([{ op: 'put', ns: 'n', id: 'x', value: { v: 1, w: 'keep' } }])
    await a.write([{ op: 'patch', ns: 'n', id: 'x', value: { v: 2 } }])
    await replicate(a, b)
    await b.write([{ op: 'patch', ns: 'n', id: 'x', value: { v: 'late' } }]) // made on the first incarnation
    await a.write([{ op: 'delete', ns: 'n', id: 'x' }])
    now += GRACE
    await a.write([{ op: 'put', ns: 'n', id: 'x', value: { v: 3 } }]) // a new incarnation
    await a.write([{ op: 'patch', ns: 'n', id: 'x', value: { v: 4 } }])
    await replicate(b, a)
    await replicate(a, b)
    const [ha, hb] = await Promise.all([a.history('n', 'x', { limit: 10 }), b.history('n', 'x', { limit: 10 })])
    expect(hb).toEqual(ha)
    const values = Object.fromEntries(ha.items.map((i) => [`${i.origin}:${i.seq}`, i.values]))
    expect(values).toEqual({ 'aaaa:1': { v: 1, w: 'keep' }, 'aaaa:2': { v: 2 }, 'bbbb:1': { v: 'late' }, 'aaaa:3': {}, 'aaaa:4': { v: 3 }, 'aaaa:5': { v: 4 } })
    expect(ha.items.find((i) => i.seq === 4 && i.origin === 'aaaa')?.fresh).toBe(true)
    expect(ha.items.every((i) => i.unknownValues === undefined)).toBe(true)
  })
})

describe('entity history: seeded property', () => {
  /** What a write made, as its origin saw it: the change's vector and the values it wrote. */
  interface Made {
    readonly origin: string
    readonly seq: number
    readonly version: Record<string, number>
    readonly op: 'upsert' | 'delete'
    /** The value a field this change lists must have been written with. */
    readonly valueOf: (field: string) => JsonValue | null
    /** Fields the change must list (their visible value changed). */
    readonly changed: readonly string[]
    readonly text?: string
  }

  async function writeAndRecord(store: EntityStore, op: LocalOp, made: Map<string, Made[]>): Promise<void> {
    const key = `${op.ns}/${op.id}`
    const before = await store.get(op.ns, op.id).catch(() => undefined)
    let views
    try {
      views = await store.write([op])
    } catch (error) {
      if ((error as { code?: string }).code === 'ENTITY_NOT_FOUND') return
      throw error
    }
    const after = views[0]
    const seq = after?.version[store.nodeId] ?? 0
    if (after === undefined || seq <= (before?.version[store.nodeId] ?? 0)) return // no change made
    const old: JsonRecord = before?.value ?? {}
    let valueOf: Made['valueOf'] = () => null
    let changed: string[] = []
    if (op.op === 'put') {
      valueOf = (f) => (Object.hasOwn(op.value, f) ? (op.value[f] as JsonValue) : null)
      changed = Object.keys(op.value).filter((f) => !Object.hasOwn(old, f) || !jsonEqual(old[f] as JsonValue, op.value[f] as JsonValue))
    } else if (op.op === 'patch') {
      valueOf = (f) => (Object.hasOwn(op.value, f) ? (op.value[f] as JsonValue | null) : null)
      changed = Object.keys(op.value).filter((f) => op.value[f] !== null && (!Object.hasOwn(old, f) || !jsonEqual(old[f] as JsonValue, op.value[f] as JsonValue)))
    }
    const list = made.get(key) ?? []
    list.push({ origin: store.nodeId, seq, version: { ...after.version }, op: op.op === 'delete' ? 'delete' : 'upsert', valueOf, changed, ...(op.op === 'text' && { text: op.name }) })
    made.set(key, list)
  }

  function randomOp(rng: () => number): LocalOp {
    const id = `e${Math.floor(rng() * 4)}`
    const r = rng()
    const v = (): JsonValue => (rng() < 0.2 ? { nested: [Math.floor(rng() * 9), rng() < 0.5] } : Math.floor(rng() * 20))
    if (r < 0.3) return { op: 'put', ns: 'p', id, value: Object.fromEntries(['a', 'b', 'c'].filter(() => rng() < 0.6).map((f) => [f, v()])) }
    if (r < 0.7) return { op: 'patch', ns: 'p', id, value: Object.fromEntries(['a', 'b', 'c', 'd'].filter(() => rng() < 0.5).map((f) => [f, rng() < 0.25 ? null : v()])) }
    if (r < 0.85) return { op: 'text', ns: 'p', id, name: 'body', splices: [[0, 0, `w${Math.floor(rng() * 9)}`]] }
    return { op: 'delete', ns: 'p', id }
  }

  for (const seed of [1, 2, 3, 4, 5, 6]) {
    it(`seed ${seed}: every node lists exactly the changes written, with their values, in one causal order`, { timeout: 60_000 }, async () => {
      const rng = seededRandom(seed)
      const nodes = [await node('n1'), await node('n2'), await node('n3')]
      const made = new Map<string, Made[]>()
      for (let step = 0; step < 120; step++) {
        const r = rng()
        if (r < 0.15) {
          // Some replication in a random direction: the rest of the writes are concurrent.
          const from = nodes[Math.floor(rng() * 3)] as EntityStore
          const to = nodes[Math.floor(rng() * 3)] as EntityStore
          if (from !== to) await replicate(from, to)
        } else if (r < 0.18) {
          now += GRACE // later writes to tombstones start new incarnations
        } else {
          await writeAndRecord(nodes[Math.floor(rng() * 3)] as EntityStore, randomOp(rng), made)
        }
      }
      for (let round = 0; round < 2; round++) for (const x of nodes) for (const y of nodes) if (x !== y) await replicate(x, y)

      for (const [key, changes] of made) {
        const [ns, id] = key.split('/') as [string, string]
        const histories = await Promise.all(nodes.map((s) => allHistory(s, ns, id, 7)))
        expect(histories[1], `${key} on n2`).toEqual(histories[0])
        expect(histories[2], `${key} on n3`).toEqual(histories[0])
        const items = histories[0] as HistoryItem[]
        expect(items.map((i) => `${i.origin}:${i.seq}`).sort()).toEqual(changes.map((c) => `${c.origin}:${c.seq}`).sort())
        const position = new Map(items.map((i, n) => [`${i.origin}:${i.seq}`, n]))
        for (const c of changes) {
          const item = items[position.get(`${c.origin}:${c.seq}`) as number] as HistoryItem
          expect(item.version, `${key} ${c.origin}:${c.seq}`).toEqual(c.version)
          expect(item.op).toBe(c.op)
          expect(item.unknownValues).toBeUndefined()
          for (const f of item.fields) expect(item.values[f], `${key} ${c.origin}:${c.seq} field ${f}`).toEqual(c.valueOf(f))
          for (const f of c.changed) expect(item.fields).toContain(f)
          if (c.text !== undefined) expect(item.texts).toContain(c.text)
          // Concurrent with exactly the changes neither of whose vectors dominates the other's.
          const concurrent = changes.filter((d) => d !== c && !dominates(d.version, c.version) && !dominates(c.version, d.version))
          expect(item.concurrentCount ?? 0).toBe(concurrent.length)
          // Newest first: a change made on a version that includes another is listed before it.
          for (const d of changes) {
            if (d !== c && dominates(c.version, d.version)) expect(position.get(`${c.origin}:${c.seq}`)).toBeLessThan(position.get(`${d.origin}:${d.seq}`) as number)
          }
        }
      }
      for (const s of nodes) expect(await s.verifyHistory()).toMatchObject({ ok: true, missing: [], extra: [] })
    })
  }

  it('on one node, history is the sequence of writes applied, reversed', async () => {
    const rng = seededRandom(99)
    const a = await node('solo')
    const made = new Map<string, Made[]>()
    for (let i = 0; i < 150; i++) await writeAndRecord(a, randomOp(rng), made)
    for (const [key, changes] of made) {
      const [ns, id] = key.split('/') as [string, string]
      const items = await allHistory(a, ns, id, 4)
      expect(items.map((i) => i.seq)).toEqual(changes.map((c) => c.seq).reverse())
      for (const [n, c] of [...changes].reverse().entries()) for (const f of items[n]?.fields ?? []) expect(items[n]?.values[f]).toEqual(c.valueOf(f))
    }
  })
})

function dominates(a: Record<string, number>, b: Record<string, number>): boolean {
  return Object.entries(b).every(([k, v]) => (a[k] ?? 0) >= v)
}
