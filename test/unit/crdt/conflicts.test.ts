import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { DELETED_FIELD, conflictingFields, detectConflicts, type Head } from '../../../crdt/index.ts'
import { SIM_FIELDS, dotKey, historyArb, prng, shuffle, simulate, type SimAction, type SimChange } from './arbitraries.ts'

const SEED = 42

/** Ground truth: concurrent when neither writer had seen the other's change. */
const concurrent = (a: SimChange, b: SimChange): boolean => a !== b && !a.seen.has(dotKey(b)) && !b.seen.has(dotKey(a))

/** Brute-force model of the fields two changes conflict on. */
function modelPair(a: SimChange, b: SimChange): string[] {
  if (!concurrent(a, b)) return []
  if (a.op !== b.op) return [DELETED_FIELD]
  if (a.op === 'delete') return []
  return a.fields.filter((f) => b.fields.includes(f)).sort()
}

/** Brute-force model of detectConflicts: field -> sorted dot keys of every conflicting pair. */
function modelDetect(changes: readonly SimChange[]): { field: string; dots: string[] }[] {
  const byField = new Map<string, Set<string>>()
  for (const a of changes) {
    for (const b of changes) {
      for (const f of modelPair(a, b)) {
        const set = byField.get(f) ?? new Set<string>()
        set.add(dotKey(a)).add(dotKey(b))
        byField.set(f, set)
      }
    }
  }
  return [...byField.keys()].sort().map((field) => ({ field, dots: [...(byField.get(field) as Set<string>)] }))
}

const sortDots = (keys: string[]): string[] =>
  keys
    .map((k) => {
      const i = k.lastIndexOf(':')
      return { origin: k.slice(0, i), seq: Number(k.slice(i + 1)) }
    })
    .sort((x, y) => (x.origin !== y.origin ? (x.origin < y.origin ? -1 : 1) : x.seq - y.seq))
    .map(dotKey)

describe('conflictingFields', () => {
  it('reports exactly the shared fields of concurrent changes, symmetrically', () => {
    const seenKinds = new Set<string>()
    fc.assert(
      fc.property(historyArb(), (h) => {
        const all = simulate(h)
        for (const a of all) {
          for (const b of all) {
            const got = conflictingFields(a, b)
            expect(got).toEqual(modelPair(a, b))
            expect(conflictingFields(b, a)).toEqual(got)
            if (got.includes(DELETED_FIELD)) seenKinds.add('delete-vs-update')
            else if (got.length > 0) seenKinds.add('field')
            else if (concurrent(a, b)) seenKinds.add('concurrent-disjoint-or-both-deletes')
          }
        }
      }),
      { seed: SEED, numRuns: 300 },
    )
    expect([...seenKinds].sort()).toEqual(['concurrent-disjoint-or-both-deletes', 'delete-vs-update', 'field'])
  })

  it('a delete concurrent with an update gives exactly DELETED_FIELD, whatever the update wrote', () => {
    fc.assert(
      fc.property(fc.subarray(SIM_FIELDS), (fields) => {
        const update: Head = { origin: 'a', seq: 2, op: 'upsert', context: { a: 1 }, fields }
        const del: Head = { origin: 'b', seq: 1, op: 'delete', context: { a: 1 }, fields: [] }
        expect(conflictingFields(update, del)).toEqual([DELETED_FIELD])
        expect(conflictingFields(del, update)).toEqual([DELETED_FIELD])
        // ...and nothing once one has seen the other.
        expect(conflictingFields(update, { ...del, context: { a: 2 } })).toEqual([])
        expect(conflictingFields({ ...update, context: { a: 1, b: 1 } }, del)).toEqual([])
      }),
      { seed: SEED, numRuns: 50 },
    )
  })
})

describe('detectConflicts', () => {
  it('matches the brute-force model on any subset of a history, in any order', () => {
    let withConflicts = 0
    fc.assert(
      fc.property(historyArb(), fc.integer(), (h, seed) => {
        const all = simulate(h)
        const rand = prng(seed)
        const subset = shuffle(
          all.filter(() => rand() < 0.8),
          rand,
        )
        const got = detectConflicts(subset)
        const model = modelDetect(subset)
        expect(got.map((c) => c.field)).toEqual(model.map((c) => c.field))
        for (const [i, c] of got.entries()) {
          const keys = c.dots.map(dotKey)
          expect(keys).toEqual(sortDots(keys)) // sorted by dot
          expect([...keys].sort()).toEqual([...(model[i] as { dots: string[] }).dots].sort())
          expect(c.dots.every((d) => Object.keys(d).sort().join() === 'origin,seq')).toBe(true)
        }
        expect(detectConflicts(shuffle(subset, rand))).toEqual(got)
        if (got.length > 0) withConflicts++
      }),
      { seed: SEED, numRuns: 300 },
    )
    expect(withConflicts).toBeGreaterThan(50)
  })

  it('never reports a conflict in a sequential history', () => {
    // Every write is followed by a sync to everyone: each writer has seen all earlier changes.
    const sequentialArb = historyArb().map(({ names, actions }) => ({
      names,
      actions: actions.flatMap((a): SimAction[] =>
        a.kind === 'write' ? [a, ...names.map((_, to) => ({ kind: 'sync' as const, from: a.node, to }))] : [],
      ),
    }))
    fc.assert(
      fc.property(sequentialArb, (h) => {
        const all = simulate(h)
        expect(detectConflicts(all)).toEqual([])
        for (const a of all) for (const b of all) expect(conflictingFields(a, b)).toEqual([])
      }),
      { seed: SEED, numRuns: 200 },
    )
  })

  it('concurrent deletes alone do not conflict', () => {
    const d1: Head = { origin: 'a', seq: 2, op: 'delete', context: { a: 1 }, fields: [] }
    const d2: Head = { origin: 'b', seq: 1, op: 'delete', context: { a: 1 }, fields: [] }
    expect(detectConflicts([d1, d2])).toEqual([])
  })
})
