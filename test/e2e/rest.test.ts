import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openSse, startDaemon, stopAllDaemons, type ApiResponse, type DaemonHandle } from '../helpers/daemon-process.ts'
import { mapPool } from '../helpers/pool.ts'
import { useTempDirs } from '../helpers/temp-dir.ts'
import { waitFor } from '../helpers/wait-for.ts'

/** The REST API of docs/api.md against a real daemon process, over TCP with the bearer token. */

type Value = Record<string, unknown>
interface Entity {
  ns: string
  id: string
  value: Value
  version: Record<string, number>
  updatedAt: string
  deleted?: boolean
}
interface Page {
  items: Entity[]
  next?: string
}
interface Change {
  id: string
  op: 'upsert' | 'delete'
  version: Record<string, number>
  value?: Value
}
interface Feed {
  changes: Change[]
  cursor: string
}
interface ErrorBody {
  error: { code: string; message: string }
}

const ok = <T>(res: ApiResponse<T>): T => {
  if (res.status !== 200) throw new Error(`expected 200, got ${res.status}: ${res.text}`)
  return res.json
}
const codeOf = (res: ApiResponse): string | undefined => (res.json as ErrorBody | undefined)?.error?.code

describe('REST API', () => {
  useTempDirs('all')
  let d: DaemonHandle

  beforeAll(async () => {
    d = await startDaemon()
  })

  afterAll(async () => {
    const exit = await d?.stop()
    await stopAllDaemons()
    expect(exit).toEqual({ code: 0, signal: null })
  })

  const vvTotal = async (): Promise<number> => {
    const status = ok(await d.tcp<{ versionVector: Record<string, number> }>('GET', '/v1/status'))
    return status.versionVector[d.info.nodeId] ?? 0
  }

  async function listAll(ns: string, query: Record<string, string>): Promise<{ items: Entity[]; pages: Page[] }> {
    const pages: Page[] = []
    let after: string | undefined
    for (;;) {
      const q = new URLSearchParams({ ...query, ...(after !== undefined && { after }) })
      const page = ok(await d.tcp<Page>('GET', `/v1/ns/${ns}/entities?${q}`))
      pages.push(page)
      if (page.next === undefined) break
      expect(page.next).toBe(page.items.at(-1)?.id)
      after = page.next
    }
    return { items: pages.flatMap((p) => p.items), pages }
  }

  it('takes 1,000 writes (PUT, PATCH, batch) and reads every one back', async () => {
    const N = 1000
    const id = (i: number): string => `item-${String(i).padStart(4, '0')}`
    const valueOf = (i: number, kind: string): Value => ({
      i,
      kind,
      label: `entity ${i} ✓`,
      tags: [`t${i % 7}`, `u${i % 3}`],
      nested: { even: i % 2 === 0, half: i / 2, deep: { s: 'x'.repeat(i % 50) } },
    })
    const expected = new Map<string, Value>()
    const vvBefore = await vvTotal()

    // 0..399: PUT; 400..699: PATCH (creating); 700..999: batches of 50 mixing put and patch.
    await mapPool(
      Array.from({ length: 700 }, (_, i) => i),
      16,
      async (i) => {
        const kind = i < 400 ? 'put' : 'patch'
        const value = valueOf(i, kind)
        const entity = ok(await d.tcp<Entity>(i < 400 ? 'PUT' : 'PATCH', `/v1/ns/rest/entities/${id(i)}`, value))
        expect(entity).toMatchObject({ ns: 'rest', id: id(i), value })
        expected.set(id(i), value)
      },
    )
    const batches = Array.from({ length: 6 }, (_, b) => Array.from({ length: 50 }, (_, k) => 700 + b * 50 + k))
    await mapPool(batches, 3, async (indexes) => {
      const ops = indexes.map((i) => ({ op: i % 2 ? 'put' : 'patch', ns: 'rest', id: id(i), value: valueOf(i, 'batch') }))
      const res = ok(await d.tcp<{ results: Entity[] }>('POST', '/v1/batch', { ops }))
      expect(res.results.map((e) => e.id)).toEqual(indexes.map(id))
      for (const i of indexes) expected.set(id(i), valueOf(i, 'batch'))
    })
    // Something outside the prefix, to check that prefix filters.
    ok(await d.tcp('PUT', '/v1/ns/rest/entities/other', { other: true }))
    expect(expected.size).toBe(N)
    expect(await vvTotal()).toBe(vvBefore + N + 1)

    // GET every one.
    await mapPool([...expected], 16, async ([key, value]) => {
      const entity = ok(await d.tcp<Entity>('GET', `/v1/ns/rest/entities/${key}`))
      expect(entity.value).toEqual(value)
      expect(entity.version[d.info.nodeId]).toBeGreaterThan(0)
      expect(Number.isNaN(Date.parse(entity.updatedAt))).toBe(false)
    })

    // Paged list of the prefix: every one exactly once, in id order; no `next` on the last page.
    const { items, pages } = await listAll('rest', { prefix: 'item-', limit: '97' })
    expect(pages).toHaveLength(Math.ceil(N / 97))
    expect(pages.at(-1)?.next).toBeUndefined()
    expect('next' in (pages.at(-1) as Page)).toBe(false)
    expect(pages.slice(0, -1).every((p) => p.items.length === 97)).toBe(true)
    expect(items.map((e) => e.id)).toEqual([...expected.keys()].sort())
    for (const e of items) expect(e.value).toEqual(expected.get(e.id))

    // A full page at the very end still has no `next` when nothing follows.
    const exact = ok(await d.tcp<Page>('GET', '/v1/ns/rest/entities?prefix=item-09&limit=100'))
    expect(exact.items).toHaveLength(100)
    expect(exact.next).toBeUndefined()
    // prefix + after + limit.
    const mid = ok(await d.tcp<Page>('GET', `/v1/ns/rest/entities?prefix=item-05&after=${id(549)}&limit=30`))
    expect(mid.items.map((e) => e.id)).toEqual(Array.from({ length: 30 }, (_, k) => id(550 + k)))
    expect(mid.next).toBe(id(579))
    const tail = ok(await d.tcp<Page>('GET', `/v1/ns/rest/entities?prefix=item-05&after=${mid.next}&limit=30`))
    expect(tail.items.map((e) => e.id)).toEqual(Array.from({ length: 20 }, (_, k) => id(580 + k)))
    expect(tail.next).toBeUndefined()
    // Without a prefix the namespace holds the items and `other`; limit=1000 is the most.
    const all = await listAll('rest', { limit: '1000' })
    expect(all.items.map((e) => e.id)).toEqual([...[...expected.keys()].sort(), 'other'])
    expect(all.pages).toHaveLength(2)
    // The status counts them.
    const status = ok(await d.tcp<{ entities: number; namespaces: Record<string, number> }>('GET', '/v1/status'))
    expect(status.namespaces.rest).toBe(N + 1)
  })

  it('PUT replaces the record; PATCH merges and null removes a field', async () => {
    const path = '/v1/ns/records/entities/r1'
    expect(ok(await d.tcp<Entity>('PUT', path, { a: 1, b: { x: 1 }, c: 'keep?' })).value).toEqual({ a: 1, b: { x: 1 }, c: 'keep?' })
    expect(ok(await d.tcp<Entity>('PUT', path, { b: { y: 2 } })).value).toEqual({ b: { y: 2 } })
    expect(ok(await d.tcp<Entity>('GET', path)).value).toEqual({ b: { y: 2 } })
    // Nested values are atomic: a PATCH of b replaces b as a whole.
    expect(ok(await d.tcp<Entity>('PATCH', path, { a: 5, b: { z: 3 } })).value).toEqual({ a: 5, b: { z: 3 } })
    expect(ok(await d.tcp<Entity>('PATCH', path, { b: null, d: [1, null, 'x'] })).value).toEqual({ a: 5, d: [1, null, 'x'] })
    const final = ok(await d.tcp<Entity>('GET', path))
    expect(final.value).toEqual({ a: 5, d: [1, null, 'x'] })
    expect(final.version[d.info.nodeId]).toBeGreaterThan(0)
    // PUT of an empty record keeps the entity with no fields.
    expect(ok(await d.tcp<Entity>('PUT', path, {})).value).toEqual({})
    expect(ok(await d.tcp<Entity>('GET', path)).value).toEqual({})
  })

  it('takes ids of 256 characters and any printable characters but /', async () => {
    for (const id of ['x'.repeat(256), 'héllo wörld ✓ 😀', 'a.b-c_d~e!$&()*+,;=:@', '%41 is not A', ' ']) {
      const path = `/v1/ns/ids/entities/${encodeURIComponent(id)}`
      expect(ok(await d.tcp<Entity>('PUT', path, { id })).id).toBe(id)
      expect(ok(await d.tcp<Entity>('GET', path)).value).toEqual({ id })
    }
    const { items } = await listAll('ids', {})
    expect(items).toHaveLength(5)
  })

  it('DELETE leaves a tombstone: GET is 404 ENTITY_NOT_FOUND and the change feed shows the delete', async () => {
    ok(await d.tcp('PUT', '/v1/ns/del/entities/keep', { k: 1 }))
    const before = ok(await d.tcp<Feed>('GET', '/v1/ns/del/changes?since=now')).cursor
    ok(await d.tcp('PUT', '/v1/ns/del/entities/gone', { g: 1 }))
    const deleted = ok(await d.tcp<Entity>('DELETE', '/v1/ns/del/entities/gone'))
    expect(deleted).toMatchObject({ ns: 'del', id: 'gone', deleted: true })
    const get = await d.tcp('GET', '/v1/ns/del/entities/gone')
    expect([get.status, codeOf(get)]).toEqual([404, 'ENTITY_NOT_FOUND'])
    // A second delete of the tombstone is a 404 too.
    const again = await d.tcp('DELETE', '/v1/ns/del/entities/gone')
    expect([again.status, codeOf(again)]).toEqual([404, 'ENTITY_NOT_FOUND'])
    const feed = ok(await d.tcp<Feed>('GET', `/v1/ns/del/changes?since=${before}`))
    expect(feed.changes).toHaveLength(1)
    expect(feed.changes[0]).toMatchObject({ id: 'gone', op: 'delete' })
    expect(feed.changes[0]?.value).toBeUndefined()
    expect(feed.changes[0]?.version[d.info.nodeId]).toBe(deleted.version[d.info.nodeId])
    // The list skips it; a new write brings the entity back with only the new record.
    expect(ok(await d.tcp<Page>('GET', '/v1/ns/del/entities')).items.map((e) => e.id)).toEqual(['keep'])
    expect(ok(await d.tcp<Entity>('PATCH', '/v1/ns/del/entities/gone', { back: true })).value).toEqual({ back: true })
  })

  it('the change feed resumes from a cursor and yields each changed entity exactly once', async () => {
    const ns = 'feed'
    const start = ok(await d.tcp<Feed>('GET', `/v1/ns/${ns}/changes?since=now`)).cursor
    ok(await d.tcp('PUT', `/v1/ns/${ns}/entities/a`, { v: 1 }))
    ok(await d.tcp('PUT', `/v1/ns/${ns}/entities/b`, { v: 1 }))
    ok(await d.tcp('PUT', `/v1/ns/${ns}/entities/c`, { v: 1 }))
    ok(await d.tcp('PATCH', `/v1/ns/${ns}/entities/a`, { v: 2 }))
    ok(await d.tcp('PATCH', `/v1/ns/${ns}/entities/a`, { v: 3 }))
    ok(await d.tcp('DELETE', `/v1/ns/${ns}/entities/b`))
    ok(await d.tcp('POST', '/v1/batch', { ops: [{ op: 'put', ns, id: 'd', value: { v: 1 } }, { op: 'put', ns: 'elsewhere', id: 'a', value: {} }] }))

    // Page through with limit=2, resuming from each page's cursor.
    const seen: Change[] = []
    const cursors: number[] = []
    let cursor = start
    for (;;) {
      const page = ok(await d.tcp<Feed>('GET', `/v1/ns/${ns}/changes?since=${cursor}&limit=2`))
      if (page.changes.length === 0) {
        expect(page.cursor).toBe(cursor)
        break
      }
      expect(page.changes.length).toBeLessThanOrEqual(2)
      cursors.push(Number(page.cursor))
      seen.push(...page.changes)
      cursor = page.cursor
    }
    expect(cursors).toEqual([...cursors].sort((x, y) => x - y))
    expect(new Set(cursors).size).toBe(cursors.length)
    // Latest change per entity, in commit order: c, a (v3), b (deleted), d.
    expect(seen.map((c) => [c.id, c.op])).toEqual([
      ['c', 'upsert'],
      ['a', 'upsert'],
      ['b', 'delete'],
      ['d', 'upsert'],
    ])
    expect(seen.find((c) => c.id === 'a')?.value).toEqual({ v: 3 })

    // Only what changed after the cursor comes next.
    ok(await d.tcp('PATCH', `/v1/ns/${ns}/entities/c`, { v: 2 }))
    const next = ok(await d.tcp<Feed>('GET', `/v1/ns/${ns}/changes?since=${cursor}`))
    expect(next.changes.map((c) => [c.id, c.value])).toEqual([['c', { v: 2 }]])
    // From the beginning (no since), each entity once.
    const whole = ok(await d.tcp<Feed>('GET', `/v1/ns/${ns}/changes`))
    expect(whole.changes.map((c) => c.id).sort()).toEqual(['a', 'b', 'c', 'd'])
  })

  it('streams live changes as server-sent events, over TCP and the socket', async () => {
    for (const via of ['tcp', 'sock'] as const) {
      const ns = `live-${via}`
      const sse = await openSse(d, `/v1/ns/${ns}/changes?since=now`, via)
      try {
        expect(sse.status).toBe(200)
        ok(await d.tcp('PUT', `/v1/ns/${ns}/entities/x`, { live: 1 }))
        ok(await d.tcp('PUT', '/v1/ns/not-this-one/entities/x', { live: 0 }))
        ok(await d.tcp('PATCH', `/v1/ns/${ns}/entities/x`, { more: 2 }))
        await waitFor(() => sse.events.length >= 2, { timeout: 5000, message: `two SSE events over ${via}` })
        const changes = sse.events.map((e) => ({ event: e.event, id: Number(e.id), change: JSON.parse(e.data) as Change }))
        expect(changes.map((c) => [c.event, c.change.id, c.change.op, c.change.value])).toEqual([
          ['change', 'x', 'upsert', { live: 1 }],
          ['change', 'x', 'upsert', { live: 1, more: 2 }],
        ])
        expect(changes[1]!.id).toBeGreaterThan(changes[0]!.id)

        // Resume with Last-Event-ID: only what came after that event.
        const resumed = await openSse(d, `/v1/ns/${ns}/changes`, via, { 'last-event-id': String(changes[0]!.id) })
        try {
          await waitFor(() => resumed.events.length >= 1, { timeout: 5000, message: 'the resumed event' })
          expect(resumed.events.map((e) => Number(e.id))).toEqual([changes[1]!.id])
        } finally {
          resumed.close()
        }
      } finally {
        sse.close()
      }
    }
  })

  it('a batch is atomic: one failing op and none of its ops are visible', async () => {
    ok(await d.tcp('PUT', '/v1/ns/atomic/entities/existing', { v: 1 }))
    const vv = await vvTotal()
    const res = await d.tcp('POST', '/v1/batch', {
      ops: [
        { op: 'put', ns: 'atomic', id: 'new1', value: { v: 1 } },
        { op: 'patch', ns: 'atomic', id: 'existing', value: { v: 2 } },
        { op: 'delete', ns: 'atomic', id: 'existing' },
        { op: 'put', ns: 'atomic-other', id: 'new2', value: { v: 1 } },
        { op: 'delete', ns: 'atomic', id: 'missing' },
      ],
    })
    expect([res.status, codeOf(res)]).toEqual([404, 'ENTITY_NOT_FOUND'])
    // The error names the op it is about.
    expect((res.json as { error: { index: number } }).error.index).toBe(4)
    expect((await d.tcp('GET', '/v1/ns/atomic/entities/new1')).status).toBe(404)
    expect((await d.tcp('GET', '/v1/ns/atomic-other/entities/new2')).status).toBe(404)
    expect(ok(await d.tcp<Entity>('GET', '/v1/ns/atomic/entities/existing')).value).toEqual({ v: 1 })
    expect(await vvTotal()).toBe(vv)
    expect(ok(await d.tcp<Feed>('GET', '/v1/ns/atomic-other/changes')).changes).toEqual([])

    // The same batch without the bad op commits as a whole, in order.
    const good = ok(
      await d.tcp<{ results: Entity[] }>('POST', '/v1/batch', {
        ops: [
          { op: 'put', ns: 'atomic', id: 'new1', value: { v: 1 } },
          { op: 'patch', ns: 'atomic', id: 'existing', value: { v: 2 } },
          { op: 'delete', ns: 'atomic', id: 'existing' },
          { op: 'put', ns: 'atomic-other', id: 'new2', value: { v: 1 } },
        ],
      }),
    )
    expect(good.results.map((e) => [e.id, e.deleted ?? false])).toEqual([
      ['new1', false],
      ['existing', false],
      ['existing', true],
      ['new2', false],
    ])
    expect((await d.tcp('GET', '/v1/ns/atomic/entities/existing')).status).toBe(404)
    expect(ok(await d.tcp<Entity>('GET', '/v1/ns/atomic-other/entities/new2')).value).toEqual({ v: 1 })
  })

  it('a 10,000-op batch with one bad op says which op, in the message and in `index`', async () => {
    const ops = (bad: number, op: Record<string, unknown>): Record<string, unknown>[] =>
      Array.from({ length: 10_000 }, (_, i) => (i === bad ? op : { op: 'put', ns: 'big-batch', id: `e${i}`, value: { i } }))
    const vv = await vvTotal()
    const cases: [number, Record<string, unknown>, string][] = [
      [9000, { op: 'put', ns: 'NO', id: 'x', value: {} }, 'INVALID_NAMESPACE'],
      [7777, { op: 'patch', ns: 'big-batch', id: 'x', value: { s: '\ud800' } }, 'INVALID_RECORD'],
      [1234, { op: 'put', ns: 'big-batch', id: '', value: {} }, 'INVALID_ID'],
      [9999, { op: 'put', ns: 'big-batch', value: {} }, 'INVALID_BODY'],
      [5000, { op: 'delete', ns: 'big-batch', id: 'x', value: {} }, 'INVALID_BODY'],
    ]
    for (const [index, op, code] of cases) {
      const res = await d.tcp<{ error: { code: string; message: string; index: number } }>('POST', '/v1/batch', { ops: ops(index, op) })
      expect([res.status, res.json.error.code, res.json.error.index]).toEqual([400, code, index])
      expect(res.json.error.message).toContain(code === 'INVALID_BODY' && index === 9999 ? `/ops/${index}` : `ops[${index}]: `)
    }
    // Nothing of any of them was written.
    expect(await vvTotal()).toBe(vv)
  })

  it('text: POST applies splices in order, GET returns the text', async () => {
    const path = '/v1/ns/docs/entities/note/text/body'
    const first = ok(await d.tcp<{ version: Record<string, number> }>('POST', path, { ops: [[0, 0, 'hello world'], [5, 6, ''], [5, 0, ', there']] }))
    expect(first.version[d.info.nodeId]).toBeGreaterThan(0)
    expect(ok(await d.tcp<{ text: string; version: Record<string, number> }>('GET', path))).toEqual({ text: 'hello, there', version: first.version })
    // Positions are UTF-16 code units: the emoji counts 2.
    ok(await d.tcp('POST', path, { ops: [[0, 0, '😀'], [2, 0, '!']] }))
    expect(ok(await d.tcp<{ text: string }>('GET', path)).text).toBe('😀!hello, there')
    // Text lives next to the record: a PATCH keeps it, the entity shows the record.
    ok(await d.tcp('PATCH', '/v1/ns/docs/entities/note', { title: 'Note' }))
    expect(ok(await d.tcp<{ text: string }>('GET', path)).text).toBe('😀!hello, there')
    expect(ok(await d.tcp<Entity>('GET', '/v1/ns/docs/entities/note')).value).toEqual({ title: 'Note' })
    // An empty ops list changes nothing; a text never written reads as ''.
    ok(await d.tcp('POST', path, { ops: [] }))
    expect(ok(await d.tcp<{ text: string }>('GET', '/v1/ns/docs/entities/note/text/other')).text).toBe('')
    // The entity's text names: only the texts written, not the ones merely read.
    ok(await d.tcp('POST', '/v1/ns/docs/entities/note/text/abstract', { ops: [[0, 0, 'short']] }))
    const names = ok(await d.tcp<{ texts: string[]; version: Record<string, number> }>('GET', '/v1/ns/docs/entities/note/text'))
    expect(names).toEqual({ texts: ['abstract', 'body'], version: ok(await d.tcp<Entity>('GET', '/v1/ns/docs/entities/note')).version })
    ok(await d.tcp('PUT', '/v1/ns/docs/entities/plain', { title: 'no texts' }))
    expect(ok(await d.tcp<{ texts: string[] }>('GET', '/v1/ns/docs/entities/plain/text')).texts).toEqual([])
    expect(codeOf(await d.tcp('GET', '/v1/ns/docs/entities/missing/text'))).toBe('ENTITY_NOT_FOUND')
    ok(await d.tcp('DELETE', '/v1/ns/docs/entities/plain'))
    expect(codeOf(await d.tcp('GET', '/v1/ns/docs/entities/plain/text'))).toBe('ENTITY_NOT_FOUND')
  })

  it('serves /openapi.json, /v1/health and /v1/status', async () => {
    const spec = await d.tcp<{ openapi: string; paths: Record<string, unknown> }>('GET', '/openapi.json')
    expect(spec.status).toBe(200)
    expect(() => JSON.parse(spec.text) as unknown).not.toThrow()
    expect(spec.json.openapi).toMatch(/^3\./)
    const paths = Object.keys(spec.json.paths)
    expect(paths).toEqual(expect.arrayContaining(['/v1/status', '/v1/batch', '/v1/ns/{ns}/entities/{id}', '/v1/ns/{ns}/changes']))

    expect(ok(await d.tcp('GET', '/v1/health', undefined, { authorization: undefined }))).toEqual({ ok: true })

    const status = ok(
      await d.tcp<{ nodeId: string; peerId: string; listen: unknown; peers: unknown; versionVector: Record<string, number>; entities: unknown; uptimeMs: unknown }>(
        'GET',
        '/v1/status',
      ),
    )
    expect(status.nodeId).toBe(d.info.nodeId)
    expect(status.peerId).toBe(d.info.peerId)
    expect(Array.isArray(status.listen)).toBe(true)
    expect(typeof status.peers).toBe('number')
    expect(status.versionVector[d.info.nodeId]).toBeGreaterThan(1000)
    expect(typeof status.entities).toBe('number')
    expect(status.entities as number).toBeGreaterThan(1000)
    expect(typeof status.uptimeMs).toBe('number')
    expect(status.uptimeMs as number).toBeGreaterThan(0)
    // The socket serves the same status.
    expect(ok(await d.sock<{ nodeId: string }>('GET', '/v1/status')).nodeId).toBe(d.info.nodeId)
  })
})
