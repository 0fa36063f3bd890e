import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { createEntityDoc, type ChangeRecord, type EntitySnapshot } from '../../../crdt/index.ts'
import { MemoryKvStore } from '../../../daemon/storage/index.ts'
import { encodeMeta, type EntityMeta } from '../../../daemon/store/entity-meta.ts'
import { EntityStore, type EntityStoreOptions, type LocalOp } from '../../../daemon/store/entity-store.ts'
import { entityDeltaKey, entityMetaKey, entityStateKey } from '../../../daemon/store/keys.ts'
import { MAX_DELTAS, readStates } from '../../../daemon/store/state-parts.ts'
import { quietLogger, randomOp, seededRandom, stateOf } from '../../helpers/backup.ts'
import { replicate } from '../../helpers/store-replication.ts'

/**
 * Large entities store each commit's Yjs update after a base state and rewrite the base now and
 * then (state-parts.ts). What is read back, by every reader, after restarts and cache evictions,
 * must be exactly the state a store without deltas holds.
 */

async function open(nodeId: string, kv: MemoryKvStore, options: Partial<EntityStoreOptions> = {}): Promise<EntityStore> {
  const store = new EntityStore({ kv, nodeId, logger: quietLogger }, options)
  await store.open()
  return store
}

/** Every key of a prefix with its value. */
async function keysOf(kv: MemoryKvStore, prefix: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>()
  for await (const [key, value] of kv.iterate({ gte: `${prefix}\u0000`, lt: `${prefix}\u0001` })) out.set(key, value)
  return out
}

const splice = (pos: number, text: string): LocalOp => ({ op: 'text', ns: 'docs', id: 'big', name: 'body', splices: [[pos, 0, text]] })

describe('state deltas of large entities', () => {
  it('a small edit to a large text writes its update, not the whole state; the base is rewritten after MAX_DELTAS', async () => {
    const kv = new MemoryKvStore()
    const store = await open('a1a2a3a4a5a6a7a8', kv)
    const start = 'x'.repeat(20_000)
    await store.write([splice(0, start)])
    const base = (await keysOf(kv, 'y')).get(entityStateKey('docs', 'big')) as Uint8Array
    expect(base.length).toBeGreaterThan(4096)
    expect((await keysOf(kv, 'd')).size).toBe(0)

    let expected = start
    const sizes: number[] = []
    for (let i = 0; i < MAX_DELTAS; i++) {
      await store.write([splice(i * 70, `<${i}>`)])
      expected = `${expected.slice(0, i * 70)}<${i}>${expected.slice(i * 70)}`
      const deltas = await keysOf(kv, 'd')
      expect(deltas.size).toBe(i + 1)
      sizes.push(Math.max(...[...deltas.values()].map((d) => d.length)))
      // The base is the one written first.
      expect(Buffer.from((await keysOf(kv, 'y')).get(entityStateKey('docs', 'big')) as Uint8Array)).toEqual(Buffer.from(base))
    }
    expect(Math.max(...sizes)).toBeLessThan(100)
    expect((await store.getText('docs', 'big', 'body')).text).toBe(expected)

    // The next commit writes the base again and drops the deltas.
    await store.write([splice(0, '!')])
    expected = `!${expected}`
    expect((await keysOf(kv, 'd')).size).toBe(0)
    const rebased = (await keysOf(kv, 'y')).get(entityStateKey('docs', 'big')) as Uint8Array
    expect(createEntityDoc(rebased).getText('body').toString()).toBe(expected)

    // A restarted store reads base + deltas.
    await store.write([splice(1, '?')])
    expected = `!?${expected.slice(1)}`
    await store.close()
    const again = await open('a1a2a3a4a5a6a7a8', kv)
    expect((await again.getText('docs', 'big', 'body')).text).toBe(expected)
    expect(createEntityDoc(await again.entityState('docs', 'big')).getText('body').toString()).toBe(expected)
    await again.close()
  })

  it('a delete or a stale change does not rewrite the state', async () => {
    const kv = new MemoryKvStore()
    const store = await open('a1a2a3a4a5a6a7a8', kv)
    await store.write([splice(0, 'y'.repeat(10_000))])
    const before = await keysOf(kv, 'y')
    await store.write([{ op: 'delete', ns: 'docs', id: 'big' }])
    expect(await keysOf(kv, 'y')).toEqual(before)
    expect((await keysOf(kv, 'd')).size).toBe(0)
    await store.close()
  })

  it('a reader that read a meta before a compaction reads again instead of joining parts of two moments', async () => {
    const kv = new MemoryKvStore()
    await kv.open()
    const meta = (parts: EntityMeta['stateParts']): EntityMeta => ({ vv: {}, heads: [], fieldHeads: {}, deleted: false, updatedAt: 0, feedSeq: 9, value: {}, texts: ['body'], ...(parts && { stateParts: parts }) })
    const doc = new Y.Doc()
    doc.getText('body').insert(0, 'compacted')
    const compacted = Y.encodeStateAsUpdate(doc)
    // Now stored: the compacted base, no delta. The reader holds the meta of before, naming deltas 5 and 6.
    await kv.batch(
      [
        { type: 'put', key: entityMetaKey('docs', 'big'), value: encodeMeta(meta({ base: compacted.length })) },
        { type: 'put', key: entityStateKey('docs', 'big'), value: compacted },
      ],
      { sync: false },
    )
    const stale = meta({ base: 10, deltas: [5, 6], bytes: 2 })
    const read = await readStates(kv, [{ ns: 'docs', id: 'big', meta: stale, base: new Uint8Array([0, 0]) }])
    expect(read.metas[0]?.stateParts).toEqual({ base: compacted.length })
    expect(createEntityDoc(read.states[0]).getText('body').toString()).toBe('compacted')
    // With its deltas present the stale read is consistent, and joined.
    const other = new Y.Doc()
    other.getText('body').insert(0, 'ab')
    const d5 = Y.encodeStateAsUpdate(other)
    await kv.batch([{ type: 'put', key: entityDeltaKey('docs', 'big', 5), value: d5 }, { type: 'put', key: entityDeltaKey('docs', 'big', 6), value: new Uint8Array([0, 0]) }], { sync: false })
    const joined = await readStates(kv, [{ ns: 'docs', id: 'big', meta: stale, base: new Uint8Array([0, 0]) }])
    expect(createEntityDoc(joined.states[0]).getText('body').toString()).toBe('ab')
  })

  it('a delta that the stored meta still names but that is gone is STORAGE_CORRUPT, not a wrong state or a endless re-read', async () => {
    const kv = new MemoryKvStore()
    await kv.open()
    const meta: EntityMeta = { vv: {}, heads: [], fieldHeads: {}, deleted: false, updatedAt: 0, feedSeq: 9, value: {}, texts: ['body'], stateParts: { base: 10, deltas: [7], bytes: 2 } }
    await kv.batch(
      [
        { type: 'put', key: entityMetaKey('docs', 'big'), value: encodeMeta(meta) },
        { type: 'put', key: entityStateKey('docs', 'big'), value: new Uint8Array([0, 0]) },
      ],
      { sync: false },
    )
    await expect(readStates(kv, [{ ns: 'docs', id: 'big', meta, base: new Uint8Array([0, 0]) }])).rejects.toMatchObject({ code: 'STORAGE_CORRUPT' })
  })

  it('every reader sees what a store without deltas holds, through restarts, evictions and replication (seeded property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 2 ** 31 - 1 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 5 }), async (seed, cacheSize, maxDeltas) => {
        const rng = seededRandom(seed)
        const deltas = { minBaseBytes: 48, maxDeltas }
        const kvA = new MemoryKvStore()
        let a = await open('a1a2a3a4a5a6a7a8', kvA, { docCacheSize: cacheSize, stateDeltas: deltas })
        const b = await open('b1b2b3b4b5b6b7b8', new MemoryKvStore(), { stateDeltas: deltas })
        const reference = await open('c1c2c3c4c5c6c7c8', new MemoryKvStore(), { stateDeltas: { minBaseBytes: Number.POSITIVE_INFINITY } })
        const write = async (store: EntityStore): Promise<void> => {
          const ops = Array.from({ length: 1 + Math.floor(rng() * 3) }, () => randomOp(rng, ['items', 'notes'], 4))
          try {
            await store.write(ops)
          } catch (error) {
            if ((error as { code?: string }).code !== 'ENTITY_NOT_FOUND') throw error
          }
        }
        for (let step = 0; step < 40; step++) {
          const r = rng()
          if (r < 0.5) await write(a)
          else if (r < 0.7) await write(b)
          else if (r < 0.75) await replicate(b, a)
          else if (r < 0.8) await snapshotSync(b, a)
          else if (r < 0.9) await replicate(a, b)
          else {
            await a.close()
            a = await open('a1a2a3a4a5a6a7a8', kvA, { docCacheSize: cacheSize, stateDeltas: deltas })
          }
        }
        await replicate(b, a)
        // Changes a took in a snapshot are in b's log only: the reference takes both logs.
        await fromLogs(reference, [a, b])
        expect(reference.versionVector).toEqual(a.versionVector)
        const want = await stateOf(reference.entities())
        expect(await stateOf(a.entities())).toEqual(want)
        // The backup readers: every entity raw, and some by key.
        const snapshot = await a.openSnapshot()
        try {
          const raw: { ns: string; id: string; meta: EntityMeta; state: Uint8Array }[] = []
          for await (const batch of snapshot.rawEntities()) for (const e of batch) raw.push({ ...splitKey(e.key), meta: JSON.parse(Buffer.from(e.meta).toString()) as EntityMeta, state: e.state })
          expect(await stateOf(iterate(raw))).toEqual(want)
          const byKey = await snapshot.rawEntitiesOf(raw.map((e) => `${e.ns}\u0000${e.id}`))
          expect(byKey.map((e) => Buffer.from(e?.state ?? []).toString('base64'))).toEqual(raw.map((e) => Buffer.from(e.state).toString('base64')))
        } finally {
          await snapshot.close()
        }
        for (const [key, e] of Object.entries(want)) {
          const [ns, id] = key.split('/') as [string, string]
          if (e.deleted || !('body' in e.texts)) continue
          expect((await a.getText(ns, id, 'body')).text).toBe(e.texts.body)
          expect(createEntityDoc(await a.entityState(ns, id)).getText('body').toString()).toBe(e.texts.body)
        }
        await Promise.all([a.close(), b.close(), reference.close()])
      }),
      { seed: 20261127, numRuns: 40 },
    )
  })
})

/** Catch-up by snapshot, as the sync protocol does it: every entity's state and causal meta. */
async function snapshotSync(from: EntityStore, to: EntityStore): Promise<void> {
  const snapshots: EntitySnapshot[] = []
  for await (const e of from.entities()) {
    const { vv, heads, fieldHeads, updatedAt, incarnation } = e.meta
    snapshots.push({ ns: e.ns, id: e.id, state: e.state, vv, heads, fieldHeads, updatedAt, ...(incarnation && { incarnation }) })
  }
  await to.applySnapshot(snapshots)
  await to.completeSnapshot(from.versionVector)
}

/** Every change of the stores' logs, round after round while any applies. */
async function fromLogs(to: EntityStore, stores: readonly EntityStore[]): Promise<void> {
  for (let progress = true; progress; ) {
    progress = false
    for (const from of stores) {
      for (const origin of Object.keys(from.versionVector)) {
        const changes: ChangeRecord[] = []
        for await (const c of from.changeLog(origin, to.versionVector[origin] ?? 0)) changes.push(c)
        if (changes.length > 0 && (await to.applyRemote(changes)).applied > 0) progress = true
      }
    }
  }
}

function splitKey(key: string): { ns: string; id: string } {
  const at = key.indexOf('\u0000')
  return { ns: key.slice(0, at), id: key.slice(at + 1) }
}

async function* iterate<T>(items: readonly T[]): AsyncGenerator<T> {
  for (const item of items) yield item
}
