import type { FastifyInstance } from 'fastify'
import * as prng from 'lib0/prng'
import { request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import type { ApiContext } from '../../daemon/api/context.ts'
import { createApiServer } from '../../daemon/api/server.ts'
import { MemoryKvStore } from '../../daemon/storage/index.ts'
import type { EntitySnapshot } from '../../crdt/index.ts'
import { EntityStore, type FeedEntry, type LocalOp } from '../../daemon/store/entity-store.ts'
import { silentLogger } from '../helpers/mesh-node.ts'
import { waitFor } from '../helpers/wait-for.ts'

/**
 * The SSE change feed sends each durable commit's entries as the store announces them, and reads
 * the store again whenever it cannot tell it has everything before a commit (while it reads, after
 * a wipe). Whatever the interleaving, a subscriber sees every change of its namespace once, in
 * feed order, ending at the store's final state.
 */

const SEED = 4242

interface Sse {
  readonly events: { id: number; change: Omit<FeedEntry, 'cursor'> }[]
  close(): void
}

function openSse(port: number, path: string): Promise<Sse> {
  return new Promise((resolve, reject) => {
    const events: Sse['events'] = []
    const req = request({ host: '127.0.0.1', port, path, headers: { accept: 'text/event-stream' } }, (res) => {
      let buffer = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        buffer += chunk
        let end: number
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const id = /^id: (\d+)$/m.exec(block)?.[1]
          const data = /^data: (.*)$/m.exec(block)?.[1]
          if (id !== undefined && data !== undefined) events.push({ id: Number(id), change: JSON.parse(data) })
        }
      })
      resolve({ events, close: () => req.destroy() })
    })
    req.on('error', reject)
    req.end()
  })
}

let cleanup: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanup.reverse()) await c()
  cleanup = []
})

/** A memory store that can hold a batch after applying it: its entries are readable, its commit not yet announced. */
class HoldAfterApplyKv extends MemoryKvStore {
  #hold = false
  #gate: PromiseWithResolvers<void> | undefined

  holdNextBatch(): void {
    this.#hold = true
  }

  async held(): Promise<() => void> {
    while (this.#gate === undefined) await new Promise((r) => setTimeout(r, 1))
    const gate = this.#gate
    return () => gate.resolve()
  }

  override async batch(...args: Parameters<MemoryKvStore['batch']>): Promise<void> {
    await super.batch(...args)
    if (this.#hold) {
      this.#hold = false
      this.#gate = Promise.withResolvers<void>()
      await this.#gate.promise
    }
  }
}

async function serve(kv: MemoryKvStore = new MemoryKvStore()): Promise<{ store: EntityStore; port: number; reads: () => number }> {
  const store = new EntityStore({ kv, nodeId: 'aaaa', logger: silentLogger })
  await store.open()
  let reads = 0
  const changes = store.changes.bind(store)
  store.changes = async (...args) => {
    reads++
    return changes(...args)
  }
  const ctx = { store, nodeId: 'aaaa', peerId: 'p', startedAt: Date.now() } as unknown as ApiContext
  const app: FastifyInstance = await createApiServer(ctx, { logger: silentLogger, bodyLimit: 1 << 20 })
  await app.listen({ host: '127.0.0.1', port: 0 })
  cleanup.push(async () => {
    await app.close()
    await store.close()
  })
  return { store, port: (app.server.address() as AddressInfo).port, reads: () => reads }
}

/** What a subscriber should end with: the store's feed of `ns` after `since`, latest per entity. */
async function expectStreamMatchesStore(store: EntityStore, ns: string, since: number, sse: Sse): Promise<void> {
  const whole = await store.changes(ns, since, 10_000)
  const last = whole.changes.at(-1)?.cursor
  if (last !== undefined) await waitFor(() => sse.events.some((e) => e.id === last), { timeout: 5000 })
  const ids = sse.events.map((e) => e.id)
  expect(new Set(ids).size).toBe(ids.length)
  expect(ids).toEqual([...ids].sort((a, b) => a - b))
  expect(ids.every((id) => id > since)).toBe(true)
  // Every entry the store holds was sent, as the store reads it back.
  const sent = new Map(sse.events.map((e) => [e.id, e.change]))
  for (const { cursor, ...change } of whole.changes) expect(sent.get(cursor)).toEqual(change)
  // And what was sent for an entity last is its current entry (a wipe removes entities without
  // an entry, so only the entities the store still holds are compared).
  const lastSent = new Map<string, number>()
  for (const e of sse.events) lastSent.set(e.change.id, e.id)
  for (const c of whole.changes) expect(lastSent.get(c.id)).toBe(c.cursor)
}

describe('live SSE change feed', () => {
  it(`concurrent writers in two namespaces, deletes and wipes: each subscriber gets every change once, in order (seed ${SEED})`, async () => {
    const { store, port, reads } = await serve()
    const gen = prng.create(SEED)
    const since = store.feedCursor
    const early = await openSse(port, `/v1/ns/a/changes?since=${since}`)
    cleanup.push(async () => early.close())
    let late: { sse: Sse; since: number } | undefined
    let commits = 0
    store.on('feed', () => commits++)
    const randomOp = (): LocalOp => {
      const ns = prng.bool(gen) ? 'a' : 'b'
      const id = `e${prng.uint32(gen, 0, 30)}`
      const roll = prng.uint32(gen, 0, 9)
      if (roll < 5) return { op: 'put', ns, id, value: { v: prng.word(gen, 1, 6) } }
      if (roll < 8) return { op: 'patch', ns, id, value: { [`f${prng.uint32(gen, 0, 2)}`]: prng.uint32(gen, 0, 99) } }
      return { op: 'delete', ns, id }
    }
    for (let round = 0; round < 60; round++) {
      // Several writers at once, so groups hold several entities (some twice).
      const writers = Array.from({ length: prng.uint32(gen, 1, 6) }, () =>
        store.write(Array.from({ length: prng.uint32(gen, 1, 3) }, randomOp)).catch((error: { code?: string }) => {
          if (error.code !== 'ENTITY_NOT_FOUND') throw error
        }),
      )
      if (round % 17 === 16) writers.push(store.wipeNamespace(prng.bool(gen) ? 'a' : 'b').then(() => undefined))
      await Promise.all(writers)
      if (round === 20) {
        const at = store.feedCursor
        late = { sse: await openSse(port, `/v1/ns/a/changes?since=${Math.max(0, at - 15)}`), since: Math.max(0, at - 15) }
        const closeLate = late.sse.close
        cleanup.push(async () => closeLate())
      }
    }
    await expectStreamMatchesStore(store, 'a', since, early)
    expect(late).toBeDefined()
    if (late) await expectStreamMatchesStore(store, 'a', late.since, late.sse)
    // Most commits reached the subscribers without reading the store back.
    expect(commits).toBeGreaterThan(60)
    expect(reads()).toBeLessThan(commits / 2)
  })

  it('a wipe takes feed positions without entries: the stream reads again and goes on', async () => {
    const { store, port, reads } = await serve()
    await store.write([{ op: 'put', ns: 'a', id: 'x', value: { v: 1 } }])
    const since = store.feedCursor
    const sse = await openSse(port, `/v1/ns/a/changes?since=${since}`)
    cleanup.push(async () => sse.close())
    await waitFor(() => reads() >= 1)
    await store.write([{ op: 'put', ns: 'a', id: 'y', value: { v: 2 } }])
    await waitFor(() => sse.events.length === 1)
    const before = reads()
    await store.wipeNamespace('a')
    await store.write([{ op: 'put', ns: 'a', id: 'z', value: { v: 3 } }])
    await waitFor(() => sse.events.length === 2)
    expect(reads()).toBeGreaterThan(before)
    expect(sse.events.map((e) => [e.change.id, e.change.value])).toEqual([
      ['y', { v: 2 }],
      ['z', { v: 3 }],
    ])
    await expectStreamMatchesStore(store, 'a', since, sse)
  })

  it('an entry read before its commit is announced is sent once, and the stream goes on', async () => {
    const kv = new HoldAfterApplyKv()
    const { store, port } = await serve(kv)
    await store.write([{ op: 'put', ns: 'a', id: 'x', value: { v: 1 } }])
    const since = store.feedCursor
    kv.holdNextBatch()
    const writing = store.write([{ op: 'put', ns: 'a', id: 'y', value: { v: 2 } }])
    const release = await kv.held()
    // The subscriber's first read already sees y; y's announcement comes after.
    const sse = await openSse(port, `/v1/ns/a/changes?since=${since}`)
    cleanup.push(async () => sse.close())
    await waitFor(() => sse.events.length === 1)
    release()
    await writing
    await store.write([{ op: 'put', ns: 'a', id: 'z', value: { v: 3 } }])
    await waitFor(() => sse.events.some((e) => e.change.id === 'z'))
    expect(sse.events.map((e) => e.change.id)).toEqual(['y', 'z'])
    await expectStreamMatchesStore(store, 'a', since, sse)
  })

  it('entities merged from a snapshot (catch-up, no change records) reach subscribers at once', async () => {
    const { store, port } = await serve()
    const other = new EntityStore({ kv: new MemoryKvStore(), nodeId: 'bbbb', logger: silentLogger })
    await other.open()
    cleanup.push(() => other.close())
    await other.write([
      { op: 'put', ns: 'a', id: 's1', value: { from: 'snapshot' } },
      { op: 'put', ns: 'a', id: 's2', value: { n: 2 } },
    ])
    const since = store.feedCursor
    const sse = await openSse(port, `/v1/ns/a/changes?since=${since}`)
    cleanup.push(async () => sse.close())
    await waitFor(() => store.listenerCount('feed') === 1)
    const snapshots: EntitySnapshot[] = []
    for await (const e of other.entities()) snapshots.push({ ns: e.ns, id: e.id, state: e.state, vv: e.meta.vv, heads: e.meta.heads, fieldHeads: e.meta.fieldHeads, updatedAt: e.meta.updatedAt })
    await store.applySnapshot(snapshots)
    // No other write follows: the snapshot's own commit is what tells the subscriber.
    await waitFor(() => sse.events.length === 2, { timeout: 5000 })
    expect(sse.events.map((e) => [e.change.id, e.change.value])).toEqual([
      ['s1', { from: 'snapshot' }],
      ['s2', { n: 2 }],
    ])
    await expectStreamMatchesStore(store, 'a', since, sse)
  })
})
