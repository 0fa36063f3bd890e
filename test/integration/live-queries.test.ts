import type { FastifyInstance } from 'fastify'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import type { EntitySnapshot, JsonRecord } from '../../crdt/index.ts'
import type { ApiContext } from '../../daemon/api/context.ts'
import { createApiServer } from '../../daemon/api/server.ts'
import { MemoryKvStore } from '../../daemon/storage/index.ts'
import { EntityStore, type EntityStoreOptions, type LocalOp } from '../../daemon/store/entity-store.ts'
import { subscribe, type LiveEventSeen, type LiveSubscription } from '../helpers/live-query-client.ts'
import { silentLogger } from '../helpers/mesh-node.ts'
import { replicate } from '../helpers/store-replication.ts'
import { waitFor } from '../helpers/wait-for.ts'

/**
 * Live queries (docs/queries.md, Live queries) on two nodes: a subscriber on A, writes on A and B
 * (B's reach A as replication hands them over), conflicts and their resolution, a resync (wipe
 * and reload), and a disconnect resumed with Last-Event-ID. Each step expects exactly its events:
 * a sentinel entity entering after the step proves nothing else came before it.
 */

const NS = 'tasks'
const OPEN = { where: { status: 'open' } }

let cleanup: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanup.reverse()) await c()
  cleanup = []
})

async function node(nodeId: string, options: EntityStoreOptions = {}): Promise<EntityStore> {
  const store = new EntityStore({ kv: new MemoryKvStore(), nodeId, logger: silentLogger }, options)
  await store.open()
  cleanup.push(() => store.close())
  return store
}

async function serve(store: EntityStore): Promise<number> {
  const ctx = { store, nodeId: store.nodeId, peerId: 'p', startedAt: Date.now() } as unknown as ApiContext
  const app: FastifyInstance = await createApiServer(ctx, { logger: silentLogger, bodyLimit: 4 << 20 })
  await app.listen({ host: '127.0.0.1', port: 0 })
  cleanup.push(() => app.close())
  return (app.server.address() as AddressInfo).port
}

async function open(port: number, body: unknown = OPEN, headers: Record<string, string> = {}): Promise<LiveSubscription> {
  const sub = await subscribe(port, NS, body, headers)
  cleanup.push(async () => sub.close())
  return sub
}

const put = (id: string, value: JsonRecord): LocalOp => ({ op: 'put', ns: NS, id, value })
const patch = (id: string, value: JsonRecord): LocalOp => ({ op: 'patch', ns: NS, id, value })
const del = (id: string): LocalOp => ({ op: 'delete', ns: NS, id })
const shape = (events: readonly LiveEventSeen[]): [string, unknown][] => events.map((e) => [e.type, e.data.id ?? e.data.count])

/** The plain query's answer: what the subscriber's result must equal. */
async function queried(store: EntityStore): Promise<Map<string, unknown>> {
  const answer = await store.indexes.query(NS, { ...OPEN, limit: 1000 })
  return new Map((answer.items ?? []).map((e) => [e.id, e.value]))
}

function held(sub: LiveSubscription): Map<string, unknown> {
  return new Map([...sub.result].map(([id, e]) => [id, e.value]))
}

let sentinels = 0
/** Writes a matching entity on `store` and returns the events `sub` got before its `enter`, from `from` on. */
async function step(store: EntityStore, sub: LiveSubscription, from: number): Promise<LiveEventSeen[]> {
  const id = `zz${++sentinels}`
  await store.write([put(id, { status: 'open', sentinel: true })])
  await waitFor(() => sub.events.some((e) => e.type === 'enter' && e.data.id === id), { timeout: 10_000, message: `sentinel ${id}` })
  const at = sub.events.findIndex((e) => e.type === 'enter' && e.data.id === id)
  expect(at).toBe(sub.events.length - 1)
  return sub.events.slice(from, at)
}

describe('live queries on two nodes', () => {
  it('sends the matches, then exactly the enter/change/leave of local, remote, conflicting, resolved and resynced writes; resumes with Last-Event-ID', { timeout: 60_000 }, async () => {
    const a = await node('aaaa')
    const b = await node('bbbb')
    const port = await serve(a)
    await a.write([put('a1', { status: 'open', n: 1 }), put('a2', { status: 'closed' })])
    await b.write([put('b1', { status: 'open' }), put('b2', { status: 'closed' })])
    await replicate(b, a)
    await replicate(a, b)

    // The snapshot: the matches in id order (no sort), then ready at A's feed position.
    const sub = await open(port)
    const first = await sub.waitEvents(3)
    expect(shape(first)).toEqual([
      ['enter', 'a1'],
      ['enter', 'b1'],
      ['ready', 2],
    ])
    expect(first.slice(0, 2).every((e) => e.id === undefined)).toBe(true)
    expect(first[2]?.id).toBe(String(a.feedCursor))
    expect(first[0]?.data).toMatchObject({ ns: NS, id: 'a1', value: { status: 'open', n: 1 } })

    // Local writes on A.
    let from = sub.events.length
    await a.write([patch('a1', { n: 2 })])
    await a.write([put('a2', { status: 'open' })])
    await a.write([patch('a1', { status: 'closed' })])
    await a.write([put('x1', { status: 'closed' })])
    await a.write([del('a2')])
    let got = await step(a, sub, from)
    expect(shape(got)).toEqual([
      ['change', 'a1'],
      ['enter', 'a2'],
      ['leave', 'a1'],
      ['leave', 'a2'],
    ])
    expect(got[0]?.data.value).toEqual({ status: 'open', n: 2 })
    expect(got[2]?.data.deleted).toBeUndefined()
    expect(got[3]?.data.deleted).toBe(true)
    // Each event's id is its feed position: increasing.
    const ids = got.map((e) => Number(e.id))
    expect(ids).toEqual([...ids].sort((x, y) => x - y))

    // Writes on B, as replication brings them to A.
    from = sub.events.length
    for (const op of [patch('b1', { n: 5 }), put('b2', { status: 'open' }), del('b1'), put('y1', { status: 'closed' })]) {
      await b.write([op])
      await replicate(b, a)
    }
    got = await step(a, sub, from)
    expect(shape(got)).toEqual([
      ['change', 'b1'],
      ['enter', 'b2'],
      ['leave', 'b1'],
    ])
    expect(got[0]?.data.value).toEqual({ status: 'open', n: 5 })
    expect(got[2]?.data.deleted).toBe(true)

    // A conflict: both write c1 concurrently; A holds its own first, then merges B's.
    from = sub.events.length
    await a.write([put('c1', { status: 'open', by: 'a' })])
    await b.write([put('c1', { status: 'closed', by: 'b' })])
    await replicate(b, a)
    const merged = await a.get(NS, 'c1')
    expect(merged.conflicts?.length ?? 0).toBeGreaterThan(0)
    got = await step(a, sub, from)
    const mergedOpen = merged.value.status === 'open'
    expect(shape(got)).toEqual([['enter', 'c1'], mergedOpen ? ['change', 'c1'] : ['leave', 'c1']])
    if (mergedOpen) expect(got[1]?.data.conflicts).toBeDefined()
    // Resolved to open on A: it is in (again).
    from = sub.events.length
    await a.write([{ op: 'resolve', ns: NS, id: 'c1', value: { status: 'open' } }])
    got = await step(a, sub, from)
    expect(shape(got)).toEqual([[mergedOpen ? 'change' : 'enter', 'c1']])
    expect(got[0]?.data.conflicts).toBeUndefined()
    await replicate(a, b)
    await replicate(b, a)
    expect(held(sub)).toEqual(await queried(a))

    // A disconnect; meanwhile writes on both nodes; resume from the last id.
    const lastId = sub.lastId() as string
    sub.close()
    await sub.ended
    await waitFor(() => a.live.subscribers().size === 0)
    await a.write([patch('b2', { n: 1 })]) // a member that still matches: enter again
    await a.write([put('d1', { status: 'open' })]) // new: enter
    await b.write([put('d2', { status: 'closed' })]) // never a member: leave (the node cannot know)
    await replicate(b, a)
    await a.write([patch('c1', { status: 'closed' })]) // a member leaving
    await a.write([del('zz1')]) // a member deleted
    const since = await a.changes(NS, Number(lastId), 1000)
    const again = await subscribe(port, NS, OPEN, { 'last-event-id': lastId }, sub.result)
    cleanup.push(async () => again.close())
    const resumed = await again.waitEvents(since.changes.length + 1)
    expect(shape(resumed)).toEqual([
      ['enter', 'b2'],
      ['enter', 'd1'],
      ['leave', 'd2'],
      ['leave', 'c1'],
      ['leave', 'zz1'],
      ['ready', (await queried(a)).size],
    ])
    expect(resumed.map((e) => e.id)).toEqual([...since.changes.map((c) => String(c.cursor)), String(a.feedCursor)])
    expect(resumed[4]?.data.deleted).toBe(true)
    expect(held(again)).toEqual(await queried(a))
    // And it goes on live.
    from = again.events.length
    await a.write([patch('d1', { status: 'closed' })])
    got = await step(a, again, from)
    expect(shape(got)).toEqual([['leave', 'd1']])

    // A resync of A from B: the wipe empties the namespace (every member leaves), the reload brings back B's.
    await replicate(a, b)
    await a.write([put('e1', { status: 'open' })]) // only on A: the resync drops it
    await waitFor(() => again.result.has('e1'))
    from = again.events.length
    const members = [...again.result.keys()].sort()
    await a.wipeNamespace(NS)
    await again.waitEvents(from + members.length)
    const leaves = again.events.slice(from)
    expect(leaves.map((e) => [e.type, e.data.id, e.data.deleted]).sort()).toEqual(members.map((id) => ['leave', id, true]))
    expect(leaves.slice(0, -1).every((e) => e.id === undefined)).toBe(true)
    expect(leaves.at(-1)?.id).toBe(String(a.feedCursor))
    from = again.events.length
    const snapshots: EntitySnapshot[] = []
    for await (const e of b.entities({ ns: NS })) snapshots.push({ ns: e.ns, id: e.id, state: e.state, vv: e.meta.vv, heads: e.meta.heads, fieldHeads: e.meta.fieldHeads, updatedAt: e.meta.updatedAt })
    await a.applySnapshot(snapshots)
    got = await step(a, again, from)
    const fromB = [...(await queried(b)).keys()].sort()
    expect(shape(got).sort()).toEqual(fromB.map((id) => ['enter', id]))
    expect(held(again)).toEqual(await queried(a))

    // Resuming from before a wipe: the node cannot tell what went, so it starts over with reset.
    const beforeWipe = again.lastId() as string
    again.close()
    await a.wipeNamespace(NS)
    await a.applySnapshot(snapshots)
    const reset = await open(port, OPEN, { 'last-event-id': beforeWipe })
    const want = await queried(a)
    const restarted = await reset.waitEvents(want.size + 2)
    expect(shape(restarted)).toEqual([['reset', undefined], ...[...want.keys()].sort().map((id) => ['enter', id]), ['ready', want.size]])
    expect(held(reset)).toEqual(want)
  })

  it('sort orders the snapshot, fields project every entity sent, explain puts the plan in ready', async () => {
    const a = await node('aaaa')
    const port = await serve(a)
    await a.write([put('p', { status: 'open', rank: 2, extra: 'x' }), put('q', { status: 'open', rank: 9, extra: 'y' }), put('r', { status: 'open', rank: 5 })])
    const sub = await open(port, { ...OPEN, sort: ['rank:desc'], fields: ['rank'], explain: true })
    const first = await sub.waitEvents(4)
    expect(first.map((e) => [e.type, e.data.id, e.data.value])).toEqual([
      ['enter', 'q', { rank: 9 }],
      ['enter', 'r', { rank: 5 }],
      ['enter', 'p', { rank: 2 }],
      ['ready', undefined, undefined],
    ])
    expect(first[3]?.data).toMatchObject({ count: 3, plan: { type: 'scan' } })
    await a.write([patch('p', { extra: 'z', rank: 3 })])
    const [, , , , change] = await sub.waitEvents(5)
    expect(change?.data).toMatchObject({ id: 'p', value: { rank: 3 } })
  })

  it('refuses bad live queries before a stream starts, and a cursor past a purge answers 410', async () => {
    const a = await node('aaaa', { maxScan: 5 })
    const port = await serve(a)
    await a.write([put('k1', { status: 'open' })])
    const cases: [unknown, Record<string, string>, number, string, string?][] = [
      [{ ...OPEN, limit: 10 }, {}, 400, 'INVALID_QUERY', 'limit:'],
      [{ ...OPEN, cursor: 'abc' }, {}, 400, 'INVALID_QUERY', 'cursor:'],
      [{ ...OPEN, count: true }, {}, 400, 'INVALID_QUERY', 'count:'],
      [{ where: { status: { $regex: 'o' } } }, {}, 400, 'INVALID_QUERY', 'where.status.$regex:'],
      [{ ...OPEN, bogus: 1 }, {}, 400, 'INVALID_QUERY', 'bogus:'],
      [OPEN, { 'last-event-id': 'abc' }, 400, 'INVALID_CURSOR'],
      [OPEN, { 'last-event-id': String(a.feedCursor + 1) }, 400, 'INVALID_CURSOR'],
    ]
    for (const [body, headers, status, code, part] of cases) {
      const sub = await subscribe(port, NS, body, headers)
      expect([sub.status, sub.error?.code], JSON.stringify(body)).toEqual([status, code])
      if (part !== undefined) expect(sub.error?.message.startsWith(part)).toBe(true)
    }
    expect((await subscribe(port, 'bad ns!', OPEN)).error?.code).toBe('INVALID_NAMESPACE')
    // A scan of more than query.maxScan entities.
    await a.write(Array.from({ length: 6 }, (_, i) => put(`m${i}`, { status: 'closed' })))
    expect((await subscribe(port, NS, OPEN)).error?.code).toBe('QUERY_NEEDS_INDEX')
    await a.write(Array.from({ length: 6 }, (_, i) => del(`m${i}`)))
    // A cursor older than a purge of tombstones.
    const old = a.feedCursor
    await a.write([del('k1')])
    const tombstones = []
    for await (const t of a.tombstones(NS)) tombstones.push(t)
    expect(await a.purgeTombstones(tombstones)).toBe(7)
    const expired = await subscribe(port, NS, OPEN, { 'last-event-id': String(old - 3) })
    expect([expired.status, expired.error?.code]).toEqual([410, 'CURSOR_EXPIRED'])
    expect(a.live.subscribers().size).toBe(0)
  })

  it('a subscriber that does not read is dropped with SLOW_CONSUMER once its events pass query.liveBufferBytes; others go on', { timeout: 60_000 }, async () => {
    const a = await node('aaaa', { liveBufferBytes: 256 * 1024 })
    const port = await serve(a)
    const slow = await open(port)
    const fine = await open(port)
    await slow.waitEvents(1)
    await fine.waitEvents(1)
    expect(a.live.subscribers().get(NS)).toBe(2)
    // The slow one stops reading: its socket's buffers fill, then the node's.
    slow.pause()
    const big = 'x'.repeat(60 * 1024)
    for (let i = 0; a.live.dropped === 0; i++) {
      if (i > 5000) throw new Error('never dropped')
      await a.write([put(`big${i % 50}`, { status: 'open', big, i })])
      // The other one reads each event before the next write.
      await waitFor(() => fine.events.some((e) => e.data.value !== undefined && (e.data.value as { i?: number }).i === i))
    }
    await waitFor(() => a.live.subscribers().get(NS) === 1)
    // The other subscriber got everything, and goes on.
    const written = await queried(a)
    await waitFor(() => fine.result.size === written.size && [...fine.result].every(([id, e]) => JSON.stringify(e.value) === JSON.stringify(written.get(id))), { timeout: 20_000 })
    // Reading again, the slow one finds the end event naming why, then the end of the stream.
    slow.resume()
    await slow.ended
    const end = slow.events.at(-1)
    expect(end?.type).toBe('end')
    expect(end?.data.code).toBe('SLOW_CONSUMER')
  })
})
