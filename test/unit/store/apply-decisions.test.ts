import { describe, expect, it } from 'vitest'
import type { ChangeRecord, EntitySnapshot } from '../../../crdt/index.ts'
import {
  advancedMeta,
  isFrozen,
  keptSnapshotVv,
  mergedSnapshotMeta,
  newIncarnationMeta,
  remoteVerdict,
  snapshotVerdict,
  staleChangeMeta,
  validateLocalOps,
  type ChangeEffect,
  type LocalEntity,
  type LocalRules,
} from '../../../daemon/store/apply-decisions.ts'
import type { EntityMeta } from '../../../daemon/store/entity-meta.ts'
import { entityMetaKey } from '../../../daemon/store/keys.ts'
import type { LocalOp } from '../../../daemon/store/types.ts'

// Plain values only: no document, no store.
const NOT_AN_UPDATE = new Uint8Array([0xff, 0xff, 0xff, 0xff])

function change(over: Partial<ChangeRecord> = {}): ChangeRecord {
  return { origin: 'a', seq: 1, ns: 'notes', id: 'n1', op: 'upsert', context: {}, fields: ['title'], texts: [], update: new Uint8Array(0), time: 1000, ...over }
}

function meta(over: Partial<EntityMeta> = {}): EntityMeta {
  return { vv: { a: 1 }, heads: [{ origin: 'a', seq: 1, op: 'upsert', context: {}, fields: ['title'] }], fieldHeads: { title: [{ origin: 'a', seq: 1 }] }, deleted: false, updatedAt: 1000, feedSeq: 3, value: { title: 'x' }, texts: [], ...over }
}

function snapshot(over: Partial<EntitySnapshot> = {}): EntitySnapshot {
  return { ns: 'notes', id: 'n1', vv: { b: 2 }, heads: [], fieldHeads: {}, updatedAt: 2000, state: new Uint8Array(0), ...over }
}

describe('remoteVerdict', () => {
  const at = { nodeVv: { a: 2 }, meta: meta({ vv: { a: 2 } }), horizon: undefined, mode: 'two-way' as const }

  it('refuses what is not a Yjs update, before anything else', () => {
    expect(remoteVerdict(change({ seq: 1, update: NOT_AN_UPDATE }), at)).toBe('invalid')
  })

  it('counts a change already here as a duplicate', () => {
    expect(remoteVerdict(change({ seq: 2 }), at)).toBe('duplicate')
  })

  it('defers a change after a gap, or whose context is not here yet', () => {
    expect(remoteVerdict(change({ seq: 4 }), at)).toBe('deferred')
    expect(remoteVerdict(change({ seq: 3, context: { b: 1 } }), at)).toBe('deferred')
  })

  it('applies the next change of its origin', () => {
    expect(remoteVerdict(change({ seq: 3, context: { a: 2 } }), at)).toBe('apply')
  })

  it('only records a change in a push-only namespace, even a stale one', () => {
    expect(remoteVerdict(change({ seq: 3 }), { ...at, mode: 'push-only' })).toBe('record')
    expect(remoteVerdict(change({ seq: 3 }), { ...at, meta: undefined, horizon: { a: 5 }, mode: 'push-only' })).toBe('record')
  })

  it('finds a change on a purged tombstone stale', () => {
    expect(remoteVerdict(change({ seq: 3 }), { ...at, meta: undefined, horizon: { a: 5 } })).toBe('stale')
  })

  it('resets the entity for a fresh change that saw its incarnation', () => {
    expect(remoteVerdict(change({ seq: 3, context: { a: 2 }, fresh: true }), at)).toBe('reset')
  })
})

describe('snapshot decisions', () => {
  it('skips push-only namespaces and refuses a state that is not a Yjs update', () => {
    expect(snapshotVerdict(snapshot({ state: NOT_AN_UPDATE }), meta(), 'push-only')).toBe('skip')
    expect(snapshotVerdict(snapshot({ state: NOT_AN_UPDATE }), meta(), 'two-way')).toBe('invalid')
  })

  it('merges the same incarnation, keeps a newer local one, is replaced by a newer remote one', () => {
    expect(snapshotVerdict(snapshot(), undefined, 'two-way')).toBe('merge')
    expect(snapshotVerdict(snapshot(), meta(), 'two-way')).toBe('merge')
    expect(snapshotVerdict(snapshot(), meta({ incarnation: { origin: 'a', seq: 1 } }), 'two-way')).toBe('keep')
    expect(snapshotVerdict(snapshot({ incarnation: { origin: 'b', seq: 2 } }), meta(), 'two-way')).toBe('replace')
  })

  it('a kept entity takes the snapshot vector only when it adds something', () => {
    expect(keptSnapshotVv(meta({ vv: { a: 1 } }), snapshot({ vv: { b: 2 } }))).toEqual({ a: 1, b: 2 })
    expect(keptSnapshotVv(meta({ vv: { a: 1, b: 2 } }), snapshot({ vv: { b: 1 } }))).toBeUndefined()
  })

  it('a merged meta keeps the latest times and the incarnation', () => {
    const before = meta({ deleted: true, deletedAt: 5000, updatedAt: 5000, incarnation: { origin: 'a', seq: 1 } })
    const merged = mergedSnapshotMeta(before, snapshot({ updatedAt: 2000 }), { vv: { a: 1, b: 2 }, heads: [], deleted: true }, { fieldHeads: {}, feedSeq: 9, value: {}, texts: [] })
    expect(merged).toMatchObject({ vv: { a: 1, b: 2 }, deleted: true, deletedAt: 5000, updatedAt: 5000, feedSeq: 9, incarnation: { origin: 'a', seq: 1 } })
    const live = mergedSnapshotMeta(undefined, snapshot({ updatedAt: 2000 }), { vv: { b: 2 }, heads: [], deleted: false }, { fieldHeads: {}, feedSeq: 1, value: { t: 1 }, texts: ['body'] })
    expect(live).toEqual({ vv: { b: 2 }, heads: [], fieldHeads: {}, deleted: false, updatedAt: 2000, feedSeq: 1, value: { t: 1 }, texts: ['body'] })
  })
})

describe('tombstones and incarnations', () => {
  it('a tombstone is frozen once its grace period has passed, from its latest delete', () => {
    const tomb = meta({ deleted: true, deletedAt: 10_000, updatedAt: 1000 })
    expect(isFrozen(tomb, 10_999, 1000)).toBe(false)
    expect(isFrozen(tomb, 11_000, 1000)).toBe(true)
    expect(isFrozen(meta(), 1_000_000, 1000)).toBe(false)
  })

  it('a new incarnation keeps the vector and starts the rest over', () => {
    const next = newIncarnationMeta(meta({ vv: { a: 7 }, deleted: true, deletedAt: 5 }))
    expect(next).toEqual({ vv: { a: 7 }, heads: [], fieldHeads: {}, deleted: false, updatedAt: 1000, feedSeq: 3, value: {}, texts: [] })
  })

  it('a stale change moves the vector and the feed position only', () => {
    const before = meta()
    expect(staleChangeMeta(before, change({ origin: 'b', seq: 4 }), 8)).toEqual({ ...before, vv: { a: 1, b: 4 }, feedSeq: 8 })
  })
})

describe('advancedMeta', () => {
  const effect: ChangeEffect = { before: () => null, written: () => 'y', value: { title: 'y' }, texts: [] }

  it('a sequential write becomes the only head and moves the vector', () => {
    const next = advancedMeta(meta(), change({ origin: 'b', seq: 1, context: { a: 1 }, time: 3000 }), effect)
    expect(next.vv).toEqual({ a: 1, b: 1 })
    expect(next.heads.map((h) => `${h.origin}${h.seq}`)).toEqual(['b1'])
    expect(next.fieldHeads['title']?.map((w) => `${w.origin}${w.seq}`)).toEqual(['b1'])
    expect(next).toMatchObject({ deleted: false, updatedAt: 3000, feedSeq: 3, value: { title: 'y' } })
  })

  it('a concurrent write keeps both heads, with both values', () => {
    const next = advancedMeta(meta(), change({ origin: 'b', seq: 1, context: {} }), { ...effect, before: () => 'x' })
    expect(next.heads.map((h) => `${h.origin}${h.seq}`).sort()).toEqual(['a1', 'b1'])
    expect(next.fieldHeads['title']?.map((w) => w.value).sort()).toEqual(['x', 'y'])
  })

  it('a delete makes a tombstone with its time; a fresh change names a new incarnation and takes its context', () => {
    const tomb = advancedMeta(meta(), change({ origin: 'a', seq: 2, op: 'delete', context: { a: 1 }, fields: [], time: 4000 }), { ...effect, value: {} })
    expect(tomb).toMatchObject({ deleted: true, deletedAt: 4000 })
    const fresh = advancedMeta(meta({ vv: { a: 1 } }), change({ origin: 'b', seq: 1, context: { a: 1, c: 3 }, fresh: true }), effect)
    expect(fresh.vv).toEqual({ a: 1, b: 1, c: 3 })
    expect(fresh.incarnation).toEqual({ origin: 'b', seq: 1 })
    expect(fresh.deletedAt).toBeUndefined()
  })
})

describe('validateLocalOps', () => {
  const rules: LocalRules = { policyOf: () => 'auto', isFrozen: (m) => isFrozen(m, 100_000, 1000) }
  function entities(known: Record<string, { meta?: EntityMeta; texts?: Record<string, number> }>): (key: string) => LocalEntity {
    return (key) => {
      const e = Object.entries(known).find(([id]) => entityMetaKey('notes', id) === key)?.[1]
      return { meta: e?.meta, textLength: (name) => e?.texts?.[name] ?? 0 }
    }
  }
  const put = (id: string): LocalOp => ({ op: 'put', ns: 'notes', id, value: { a: 1 } })

  it('refuses deleting or resolving what does not exist, unless the job made it first', () => {
    expect(() => validateLocalOps([{ op: 'delete', ns: 'notes', id: 'x' }], entities({}), rules)).toThrow(/ENTITY_NOT_FOUND|not found/)
    expect(() => validateLocalOps([{ op: 'resolve', ns: 'notes', id: 'x', value: {} }], entities({}), rules)).toThrow(/not found/)
    expect(() => validateLocalOps([put('x'), { op: 'delete', ns: 'notes', id: 'x' }], entities({}), rules)).not.toThrow()
    expect(() => validateLocalOps([{ op: 'delete', ns: 'notes', id: 'x' }, { op: 'delete', ns: 'notes', id: 'x' }], entities({ x: { meta: meta() } }), rules)).toThrow(/not found/)
  })

  it('refuses a splice outside the text, counting earlier splices of the job', () => {
    const known = entities({ x: { meta: meta(), texts: { body: 5 } } })
    const splice = (pos: number, del: number, ins: string): LocalOp => ({ op: 'text', ns: 'notes', id: 'x', name: 'body', splices: [[pos, del, ins]] })
    expect(() => validateLocalOps([splice(5, 0, 'ab')], known, rules)).not.toThrow()
    expect(() => validateLocalOps([splice(6, 0, 'ab')], known, rules)).toThrow(/outside the text/)
    expect(() => validateLocalOps([splice(5, 0, 'ab'), splice(7, 0, 'c')], known, rules)).not.toThrow()
    expect(() => validateLocalOps([splice(0, 2, ''), splice(3, 1, '')], known, rules)).toThrow(/length 3/)
    // A write to a deleted entity starts it from nothing: its old text does not count.
    expect(() => validateLocalOps([splice(1, 0, 'a')], entities({ x: { meta: meta({ deleted: true }), texts: { body: 5 } } }), rules)).toThrow(/length 0/)
  })

  it('under strict, refuses writing an entity with conflicts, but not resolving it', () => {
    const conflicted = meta({
      heads: [
        { origin: 'a', seq: 1, op: 'upsert', context: {}, fields: ['title'] },
        { origin: 'b', seq: 1, op: 'upsert', context: {}, fields: ['title'] },
      ],
      fieldHeads: { title: [{ origin: 'a', seq: 1, value: 'x' }, { origin: 'b', seq: 1, value: 'y' }] },
    })
    const strict: LocalRules = { ...rules, policyOf: () => 'strict' }
    expect(() => validateLocalOps([put('x')], entities({ x: { meta: conflicted } }), strict)).toThrow(/unresolved conflicts/)
    expect(() => validateLocalOps([put('x')], entities({ x: { meta: conflicted } }), rules)).not.toThrow()
    expect(() => validateLocalOps([{ op: 'resolve', ns: 'notes', id: 'x', value: { title: 'z' } }], entities({ x: { meta: conflicted } }), strict)).not.toThrow()
  })

  it('refuses a Yjs client update that is not one, or that builds on a frozen tombstone', () => {
    const yjs: LocalOp = { op: 'yjs', ns: 'notes', id: 'x', update: new Uint8Array(0) }
    expect(() => validateLocalOps([{ ...yjs, update: NOT_AN_UPDATE }], entities({}), rules)).toThrow(/not a Yjs update/)
    expect(() => validateLocalOps([yjs], entities({ x: { meta: meta({ deleted: true, deletedAt: 1000 }) } }), rules)).toThrow(/was deleted/)
    expect(() => validateLocalOps([yjs], entities({ x: { meta: meta({ deleted: true, deletedAt: 99_500 }) } }), rules)).not.toThrow()
  })
})
