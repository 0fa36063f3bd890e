import { describe, expect, it } from 'vitest'
import type { EntityMeta } from '../../../daemon/store/entity-meta.ts'
import { conflictKey, entityDeltaKey, entityMetaKey, entityStateKey, feedKey, tombstoneKey } from '../../../daemon/store/keys.ts'
import { decidePurge } from '../../../daemon/store/maintenance.ts'
import type { TombstoneInfo } from '../../../daemon/store/types.ts'

// Plain values only: the metas as a store would hold them, no store.
function tomb(vv: Record<string, number>, over: Partial<EntityMeta> = {}): EntityMeta {
  return { vv, heads: [], fieldHeads: {}, deleted: true, updatedAt: 1000, deletedAt: 1000, feedSeq: 7, value: {}, texts: [], ...over }
}

function seen(ns: string, id: string, vv: Record<string, number>): TombstoneInfo {
  return { ns, id, deletedAt: 1000, vv }
}

describe('decidePurge', () => {
  it('purges only the tombstones still as the GC saw them', () => {
    const tombstones = [seen('notes', 'gone', { a: 2 }), seen('notes', 'back', { a: 2 }), seen('notes', 'later', { a: 2 }), seen('notes', 'same', { a: 2 })]
    const metas = [undefined, tomb({ a: 3 }, { deleted: false }), tomb({ a: 2, b: 1 }), tomb({ a: 2 })]
    const decision = decidePurge(tombstones, metas, { horizon: {}, feedFloor: {} })
    expect(decision.purged.map((p) => p.id)).toEqual(['same'])
  })

  it('deletes every entry of a purged entity: meta, state, deltas, tombstone, conflict and feed entries', () => {
    const meta = tomb({ a: 2 }, { feedSeq: 9, stateParts: { base: 10, deltas: [5, 8] } })
    const { ops } = decidePurge([seen('notes', 'n1', { a: 2 })], [meta], { horizon: {}, feedFloor: {} })
    expect(ops.every((op) => op.type === 'del')).toBe(true)
    expect(ops.map((op) => op.key).sort()).toEqual(
      [
        entityMetaKey('notes', 'n1'),
        entityStateKey('notes', 'n1'),
        entityDeltaKey('notes', 'n1', 5),
        entityDeltaKey('notes', 'n1', 8),
        tombstoneKey('notes', 'n1'),
        conflictKey('notes', 'n1'),
        feedKey('notes', 9),
      ].sort(),
    )
    const unfed = decidePurge([seen('notes', 'n1', { a: 2 })], [tomb({ a: 2 }, { feedSeq: 0 })], { horizon: {}, feedFloor: {} })
    expect(unfed.ops.map((op) => op.key)).not.toContain(feedKey('notes', 0))
  })

  it('raises each namespace horizon and feed floor past what it purged, and adopts a peer horizon', () => {
    const decision = decidePurge(
      [seen('notes', 'n1', { a: 2 }), seen('notes', 'n2', { b: 4 }), seen('tasks', 't1', { a: 1 })],
      [tomb({ a: 2 }, { feedSeq: 12 }), tomb({ b: 4 }, { feedSeq: 5 }), tomb({ a: 1 }, { feedSeq: 3 })],
      { horizon: { notes: { c: 1 } }, feedFloor: { notes: 20 } },
      { ns: 'docs', horizon: { d: 9 } },
    )
    expect(decision.horizon).toEqual({ notes: { a: 2, b: 4, c: 1 }, tasks: { a: 1 }, docs: { d: 9 } })
    expect(decision.feedFloor).toEqual({ notes: 20, tasks: 3 })
  })

  it('leaves the state it was given untouched, and reads a namespace named like an Object member as its own', () => {
    const state = { horizon: {}, feedFloor: {} }
    const decision = decidePurge([seen('constructor', 'x', { a: 1 })], [tomb({ a: 1 }, { feedSeq: 2 })], state)
    expect(decision.horizon).toEqual({ constructor: { a: 1 } })
    expect(decision.feedFloor).toEqual({ constructor: 2 })
    expect(state).toEqual({ horizon: {}, feedFloor: {} })
  })
})
