import { pino } from 'pino'
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { createEntityDoc, hasPendingUpdates, readRecord, type ChangeRecord } from '../../../crdt/index.ts'
import { staleNamespaces, TombstoneCollector } from '../../../daemon/replication/tombstone-gc.ts'
import { MemoryKvStore } from '../../../daemon/storage/index.ts'
import { EntityStore } from '../../../daemon/store/entity-store.ts'
import { replicate } from '../../helpers/store-replication.ts'

const logger = pino({ level: 'silent' })
const GRACE = 10_000
const SKEW = 1_000
const stores: EntityStore[] = []
let now = 1_000_000
const clock = (): number => now

async function node(nodeId: string): Promise<EntityStore> {
  const store = new EntityStore({ kv: new MemoryKvStore(), nodeId, logger }, { now: clock, tombstoneGraceMs: GRACE })
  await store.open()
  stores.push(store)
  return store
}

async function lastChange(store: EntityStore): Promise<ChangeRecord> {
  const all: ChangeRecord[] = []
  for await (const c of store.changeLog(store.nodeId, 0)) all.push(c)
  return all.at(-1) as ChangeRecord
}

/** What must be identical on converged replicas: value, deletion, vector, Yjs state vector. */
async function replicaState(store: EntityStore, ns: string, id: string): Promise<unknown> {
  const state = await store.entityState(ns, id)
  let entity: unknown = null
  for await (const e of store.entities({ ns })) if (e.id === id) entity = { value: e.meta.value, deleted: e.meta.deleted, vv: e.meta.vv, incarnation: e.meta.incarnation ?? null }
  const doc = createEntityDoc(state)
  return { entity, pending: hasPendingUpdates(doc), sv: state ? [...Y.encodeStateVectorFromUpdate(state)] : null }
}

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close()
})

describe('incarnations: writes to a tombstone past its grace period', () => {
  it('reuse the document within the grace period and start a fresh, self-contained one after it', async () => {
    const a = await node('aaaa')
    await a.write([{ op: 'put', ns: 'ns', id: 'x', value: { v: 1, keep: 'old' } }])
    await a.write([{ op: 'delete', ns: 'ns', id: 'x' }])
    now += GRACE - 1
    await a.write([{ op: 'put', ns: 'ns', id: 'x', value: { v: 2 } }])
    const within = await lastChange(a)
    expect(within.fresh).toBeUndefined()
    // Made on the old document: on an empty one it waits for items it does not have.
    const probe = createEntityDoc()
    Y.applyUpdate(probe, within.update)
    expect(hasPendingUpdates(probe)).toBe(true)

    await a.write([{ op: 'delete', ns: 'ns', id: 'x' }])
    now += GRACE
    const [view] = await a.write([{ op: 'put', ns: 'ns', id: 'x', value: { v: 3 } }])
    const after = await lastChange(a)
    expect(after.fresh).toBe(true)
    expect(view?.value).toEqual({ v: 3 })
    const empty = createEntityDoc()
    Y.applyUpdate(empty, after.update)
    expect(hasPendingUpdates(empty)).toBe(false)
    expect(readRecord(empty)).toEqual({ v: 3 })
    expect(a.gcStats.incarnations).toBe(1)
  })

  it('a Yjs client update to a tombstone past its grace period is refused with ENTITY_DELETED', async () => {
    const a = await node('aaaa')
    await a.write([{ op: 'put', ns: 'ns', id: 'x', value: { v: 1 } }])
    await a.write([{ op: 'delete', ns: 'ns', id: 'x' }])
    now += GRACE
    const client = createEntityDoc()
    client.getMap('data').set('v', 9)
    await expect(a.write([{ op: 'yjs', ns: 'ns', id: 'x', update: Y.encodeStateAsUpdate(client) }])).rejects.toMatchObject({ code: 'ENTITY_DELETED' })
  })

  it('a fresh incarnation supersedes a concurrent write on the old one on every node, whatever the arrival order', async () => {
    const a = await node('aaaa')
    const b = await node('bbbb')
    const c = await node('cccc')
    await a.write([{ op: 'put', ns: 'ns', id: 'x', value: { v: 1, t: 'base' } }])
    await replicate(a, b)
    await replicate(a, c)
    // C writes on the first incarnation without seeing the delete.
    await c.write([{ op: 'patch', ns: 'ns', id: 'x', value: { late: true } }])
    await a.write([{ op: 'delete', ns: 'ns', id: 'x' }])
    await replicate(a, b)
    now += GRACE
    await a.write([{ op: 'put', ns: 'ns', id: 'x', value: { v: 2 } }])
    // B gets C's write first, then A's fresh one; A gets C's write after its own fresh one.
    await replicate(c, b)
    await replicate(a, b)
    await replicate(c, a)
    await replicate(a, c)
    const states = await Promise.all([a, b, c].map((s) => replicaState(s, 'ns', 'x')))
    expect(states[1]).toEqual(states[0])
    expect(states[2]).toEqual(states[0])
    expect((await a.get('ns', 'x')).value).toEqual({ v: 2 })
    expect(a.gcStats.staleChanges).toBe(1)
    expect((states[0] as { pending: boolean }).pending).toBe(false)
  })

  it('two concurrent fresh incarnations: the greater dot wins on every node', async () => {
    const a = await node('aaaa')
    const b = await node('bbbb')
    await a.write([{ op: 'put', ns: 'ns', id: 'x', value: { v: 1 } }])
    await a.write([{ op: 'delete', ns: 'ns', id: 'x' }])
    await replicate(a, b)
    now += GRACE
    await a.write([{ op: 'put', ns: 'ns', id: 'x', value: { from: 'a' } }])
    await b.write([{ op: 'put', ns: 'ns', id: 'x', value: { from: 'b' } }])
    await replicate(a, b)
    await replicate(b, a)
    expect(await replicaState(b, 'ns', 'x')).toEqual(await replicaState(a, 'ns', 'x'))
    // Dots (aaaa, 3) and (bbbb, 1): origins order first, so B's incarnation wins.
    expect((await a.get('ns', 'x')).value).toEqual({ from: 'b' })
  })
})

describe('tombstone purge', () => {
  async function cluster(): Promise<{ a: EntityStore; b: EntityStore; gcA: TombstoneCollector; gcB: TombstoneCollector }> {
    const a = await node('aaaa')
    const b = await node('bbbb')
    const gcA = new TombstoneCollector(a, () => ['bbbb'], logger, { clockSkewMs: SKEW, now: clock })
    const gcB = new TombstoneCollector(b, () => ['aaaa'], logger, { clockSkewMs: SKEW, now: clock })
    return { a, b, gcA, gcB }
  }

  /** A sync session's effect on the collectors: both see each other's vector now. */
  async function session(x: EntityStore, y: EntityStore, gx: TombstoneCollector, gy: TombstoneCollector): Promise<void> {
    await replicate(x, y)
    await replicate(y, x)
    gx.fromHello(y.nodeId, y.versionVector, gy.hello())
    gy.fromHello(x.nodeId, x.versionVector, gx.hello())
  }

  it('waits for the grace period and for every member to be seen with the tombstone after it', async () => {
    const { a, b, gcA, gcB } = await cluster()
    await a.write([
      { op: 'put', ns: 'ns', id: 'x', value: { v: 1 } },
      { op: 'put', ns: 'ns', id: 'y', value: { v: 1 } },
    ])
    await a.write([{ op: 'delete', ns: 'ns', id: 'x' }])
    const cursor = (await a.changes('ns', 0, 100)).changes[0]?.cursor as number
    await session(a, b, gcA, gcB)
    expect(await gcA.sweep()).toBe(0) // grace not over
    now += GRACE + SKEW
    expect(await gcA.sweep()).toBe(0) // B was last seen before the grace period ended
    await session(a, b, gcA, gcB)
    expect(await gcA.sweep()).toBe(1)
    expect(await gcB.sweep()).toBe(1)
    for (const s of [a, b]) {
      expect(await s.entityState('ns', 'x')).toBeUndefined()
      expect([...(await s.changes('ns', 0, 100)).changes].map((c) => c.id)).toEqual(['y'])
      expect(s.purgeHorizon.ns).toEqual({ aaaa: 3 })
      const left: string[] = []
      for await (const t of s.tombstones()) left.push(t.id)
      expect(left).toEqual([])
    }
    expect((await a.get('ns', 'y')).value).toEqual({ v: 1 })
    // A cursor from before the purge may have missed the deletion.
    await expect(a.changes('ns', cursor, 100)).rejects.toMatchObject({ code: 'CURSOR_EXPIRED' })
    await expect(a.changes('ns', 0, 100)).resolves.toBeDefined()
  })

  it('a member never seen blocks the purge', async () => {
    const { a, b, gcA, gcB } = await cluster()
    await a.write([{ op: 'put', ns: 'ns', id: 'x', value: { v: 1 } }])
    await a.write([{ op: 'delete', ns: 'ns', id: 'x' }])
    const c = await node('cccc')
    await c.write([{ op: 'put', ns: 'other', id: 'z', value: {} }])
    await replicate(c, a) // C is now an origin A knows, but A never saw C's vector
    now += GRACE + SKEW
    await session(a, b, gcA, gcB)
    expect(await gcA.sweep()).toBe(0)
    gcA.fromHello('cccc', c.versionVector, undefined)
    expect(await gcA.sweep()).toBe(0) // C lacks the tombstone
    await replicate(a, c)
    gcA.fromHello('cccc', c.versionVector, undefined)
    expect(await gcA.sweep()).toBe(1)
  })

  it('observations travel: B reports C, so A (never connected to C) waits for and then trusts it', async () => {
    const { a, b, gcA, gcB } = await cluster()
    const c = await node('cccc')
    const gcC = new TombstoneCollector(c, () => ['bbbb'], logger, { clockSkewMs: SKEW, now: clock })
    await a.write([{ op: 'put', ns: 'ns', id: 'x', value: { v: 1 } }])
    await a.write([{ op: 'delete', ns: 'ns', id: 'x' }])
    await session(a, b, gcA, gcB)
    await session(b, c, gcB, gcC)
    now += GRACE + SKEW
    await session(a, b, gcA, gcB) // A learns of C only through B, with an observation from before
    expect(gcA.members()).toContain('cccc')
    expect(await gcA.sweep()).toBe(0)
    await session(b, c, gcB, gcC)
    await session(a, b, gcA, gcB)
    expect(await gcA.sweep()).toBe(1)
  })

  it('a tombstone that changed after the sweep looked is not purged', async () => {
    const { a } = await cluster()
    await a.write([{ op: 'put', ns: 'ns', id: 'x', value: { v: 1 } }])
    await a.write([{ op: 'delete', ns: 'ns', id: 'x' }])
    const [t] = await (async () => {
      const out = []
      for await (const t of a.tombstones()) out.push(t)
      return out
    })()
    await a.write([{ op: 'put', ns: 'ns', id: 'x', value: { v: 2 } }])
    expect(await a.purgeTombstones([t as never])).toBe(0)
    expect((await a.get('ns', 'x')).value).toEqual({ v: 2 })
  })

  it('after a purge, a fresh write from a node still holding the tombstone applies; an old-history write is stale', async () => {
    const { a, b, gcA, gcB } = await cluster()
    const c = await node('cccc')
    await a.write([{ op: 'put', ns: 'ns', id: 'x', value: { v: 1, t: 'old' } }])
    await replicate(a, b)
    await replicate(a, c)
    await a.write([{ op: 'delete', ns: 'ns', id: 'x' }])
    await replicate(a, b)
    now += GRACE + SKEW
    await session(a, b, gcA, gcB)
    expect(await gcA.sweep()).toBe(1)
    // B still holds the tombstone: its write starts a fresh incarnation, which A can apply.
    await b.write([{ op: 'put', ns: 'ns', id: 'x', value: { v: 'again' } }])
    await replicate(b, a)
    expect((await a.get('ns', 'x')).value).toEqual({ v: 'again' })
    expect(await replicaState(a, 'ns', 'x')).toEqual(await replicaState(b, 'ns', 'x'))

    // y: deleted and purged on A; C (not a member A waited for, never saw the delete) then writes on its old copy.
    await a.write([{ op: 'put', ns: 'ns', id: 'y', value: { v: 1 } }])
    await replicate(a, c)
    await c.write([{ op: 'patch', ns: 'ns', id: 'y', value: { zombie: true } }])
    await a.write([{ op: 'delete', ns: 'ns', id: 'y' }])
    now += GRACE + SKEW
    await session(a, b, gcA, gcB)
    expect(await gcA.sweep()).toBe(1)
    const stale = a.gcStats.staleChanges
    await replicate(c, a)
    await expect(a.get('ns', 'y')).rejects.toMatchObject({ code: 'ENTITY_NOT_FOUND' })
    expect(await a.entityState('ns', 'y')).toBeUndefined()
    expect(a.gcStats.staleChanges).toBe(stale + 1)
  })

  it('a node that adopted a horizon drops the old history of purged entities instead of rebuilding them', async () => {
    const a = await node('aaaa')
    const fresh = await node('dddd')
    await a.write([{ op: 'put', ns: 'ns', id: 'x', value: { v: 1 } }])
    await a.write([{ op: 'delete', ns: 'ns', id: 'x' }])
    await a.purgeTombstones([{ ns: 'ns', id: 'x', deletedAt: 0, vv: { aaaa: 2 } }])
    await fresh.adoptPurgeHorizon('ns', a.purgeHorizon.ns ?? {})
    await replicate(a, fresh)
    expect(fresh.versionVector).toEqual({ aaaa: 2 })
    expect(await fresh.entityState('ns', 'x')).toBeUndefined()
  })
})

describe('staleNamespaces', () => {
  const horizon = { ns: { aaaa: 5, bbbb: 2 } }
  it('flags a peer that knows part of the purged history, and only that', () => {
    expect(staleNamespaces(horizon, { aaaa: 3, bbbb: 2 }, {})).toEqual([{ ns: 'ns', horizon: horizon.ns }])
    expect(staleNamespaces(horizon, { aaaa: 5, bbbb: 9 }, {})).toEqual([]) // has every purged change
    expect(staleNamespaces(horizon, { cccc: 7 }, {})).toEqual([]) // knows nothing of it: a new node
    expect(staleNamespaces(horizon, { aaaa: 3 }, { ns: { aaaa: 5, bbbb: 2 } })).toEqual([]) // reloaded already
    expect(staleNamespaces({ constructor: { aaaa: 1 } }, {}, {})).toEqual([])
  })
})

describe('randomized: deletes, recreates, partial syncs and GC sweeps on 4 nodes converge', () => {
  const SEED = 20261126
  type Step =
    | { kind: 'write'; node: number; id: number; op: 'put' | 'patch' | 'delete'; v: number }
    | { kind: 'sync'; a: number; b: number }
    | { kind: 'tick'; ms: number }
    | { kind: 'sweep'; node: number }
  const step: fc.Arbitrary<Step> = fc.oneof(
    { weight: 5, arbitrary: fc.record({ kind: fc.constant('write' as const), node: fc.nat(3), id: fc.nat(4), op: fc.constantFrom('put' as const, 'patch' as const, 'delete' as const, 'delete' as const), v: fc.nat(99) }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('sync' as const), a: fc.nat(3), b: fc.nat(3) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.constantFrom(1, GRACE / 2, GRACE + SKEW) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('sweep' as const), node: fc.nat(3) }) },
  )

  it('every node ends with the same live entities (value, vector, Yjs state) and nothing pending', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 10, maxLength: 60 }), async (steps) => {
        const ids = ['n0', 'n1', 'n2', 'n3']
        const nodes = await Promise.all(ids.map((id) => node(id.repeat(2))))
        const gcs = nodes.map((s) => new TombstoneCollector(s, () => nodes.filter((o) => o !== s).map((o) => o.nodeId), logger, { clockSkewMs: SKEW, now: clock }))
        const session = async (i: number, j: number): Promise<void> => {
          const [x, y, gx, gy] = [nodes[i], nodes[j], gcs[i], gcs[j]] as [EntityStore, EntityStore, TombstoneCollector, TombstoneCollector]
          // A real session refuses a peer that lacks purges (it reloads first); here the
          // schedule just skips it, as the session would.
          if (staleNamespaces(x.purgeHorizon, y.versionVector, y.purgeHorizon).length > 0) return
          if (staleNamespaces(y.purgeHorizon, x.versionVector, x.purgeHorizon).length > 0) return
          await replicate(x, y)
          await replicate(y, x)
          // The HELLOs a session carries: each side's observations the other may lack.
          const [hx, hy] = [gx.helloFor({ peerId: y.nodeId, nodeId: y.nodeId }), gy.helloFor({ peerId: x.nodeId, nodeId: x.nodeId })]
          gx.fromHello(y.nodeId, y.versionVector, hy, y.nodeId)
          gy.fromHello(x.nodeId, x.versionVector, hx, x.nodeId)
          gx.delivered(y.nodeId, hx)
          gy.delivered(x.nodeId, hy)
        }
        for (const s of steps) {
          if (s.kind === 'write') {
            const store = nodes[s.node] as EntityStore
            const op = s.op === 'delete' ? ({ op: 'delete', ns: 'ns', id: `e${s.id}` } as const) : ({ op: s.op, ns: 'ns', id: `e${s.id}`, value: { [`f${s.v % 3}`]: s.v } } as const)
            await store.write([op]).catch((error: unknown) => {
              if ((error as { code?: string }).code !== 'ENTITY_NOT_FOUND') throw error
            })
          } else if (s.kind === 'sync' && s.a !== s.b) await session(s.a, s.b)
          else if (s.kind === 'tick') now += s.ms
          else if (s.kind === 'sweep') await (gcs[s.node] as TombstoneCollector).sweep()
        }
        // Heal: full rounds, then past every grace period, then GC everywhere, then full rounds.
        const round = async (): Promise<void> => {
          for (let i = 0; i < nodes.length; i++) for (let j = i + 1; j < nodes.length; j++) await session(i, j)
        }
        await round()
        await round()
        now += GRACE + SKEW
        await round()
        for (const gc of gcs) await gc.sweep()
        await round()
        const live = async (s: EntityStore): Promise<Record<string, unknown>> => {
          const out: Record<string, unknown> = {}
          for (const id of ['e0', 'e1', 'e2', 'e3', 'e4']) {
            const st = (await replicaState(s, 'ns', id)) as { entity: { deleted: boolean } | null; pending: boolean }
            expect(st.pending).toBe(false)
            if (st.entity && !st.entity.deleted) out[id] = st
          }
          return out
        }
        const first = await live(nodes[0] as EntityStore)
        for (const s of nodes.slice(1)) expect(await live(s)).toEqual(first)
        for (const s of nodes) expect(s.versionVector).toEqual((nodes[0] as EntityStore).versionVector)
        for (const s of stores.splice(0)) await s.close()
      }),
      { seed: SEED, numRuns: 150 },
    )
  })
})
