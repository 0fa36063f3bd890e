import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { QueryRow } from '../../../daemon/query/language.ts'
import { LiveResult, parseLiveQuery } from '../../../daemon/query/live.ts'

/**
 * The rules of a live result (docs/queries.md, Live queries), against a model: the entities'
 * states after a seeded run of changes, and a subscriber applying events as the docs say (enter
 * and change put the entity, leave removes it, reset clears).
 */

const query = parseLiveQuery({ where: { status: 'open', n: { $gte: 2 } } })
const ids = ['a', 'b', 'c', 'd', 'e']
/** A change: an entity to a state (undefined: deleted). */
const change = fc.record({
  id: fc.constantFrom(...ids),
  state: fc.option(fc.record({ status: fc.constantFrom('open', 'closed'), n: fc.integer({ min: 0, max: 3 }) }), { nil: undefined }),
})
const row = (id: string, state: { status: string; n: number } | undefined): QueryRow | undefined => (state ? { id, updatedAt: 0, value: state } : undefined)
const matching = (states: Map<string, { status: string; n: number } | undefined>): string[] =>
  [...states].filter(([, s]) => s !== undefined && s.status === 'open' && s.n >= 2).map(([id]) => id).sort()

/** A subscriber's result: ids held. */
function apply(held: Set<string>, events: readonly { id: string; type: string }[]): void {
  for (const e of events) {
    if (e.type === 'leave') held.delete(e.id)
    else held.add(e.id)
  }
}

describe('live result transitions', () => {
  it('each change gives enter, change, leave or nothing so that the subscriber always holds exactly the matches (seeded)', () => {
    fc.assert(
      fc.property(fc.array(change, { maxLength: 60 }), (changes) => {
        const result = new LiveResult(query)
        const states = new Map<string, { status: string; n: number } | undefined>()
        const held = new Set<string>()
        for (const { id, state } of changes) {
          const wasIn = held.has(id)
          states.set(id, state)
          const type = result.apply(id, row(id, state))
          const nowIn = matching(states).includes(id)
          // enter only from outside, change and leave only from inside; nothing when it stays out.
          expect(type).toBe(nowIn ? (wasIn ? 'change' : 'enter') : wasIn ? 'leave' : undefined)
          if (type) apply(held, [{ id, type }])
          expect([...held].sort()).toEqual(matching(states))
          expect(result.size).toBe(held.size)
        }
      }),
      { seed: 2601, numRuns: 300 },
    )
  })

  it('resume: enter or leave for every entity changed since the cursor brings any subscriber that held the result then to the result now (seeded)', () => {
    fc.assert(
      fc.property(fc.array(change, { maxLength: 30 }), fc.array(change, { maxLength: 30 }), (before, after) => {
        const states = new Map<string, { status: string; n: number } | undefined>()
        for (const c of before) states.set(c.id, c.state)
        const held = new Set(matching(states)) // what the subscriber had at its cursor
        const changed: string[] = []
        for (const c of after) {
          states.set(c.id, c.state)
          // The feed keeps each entity's latest change: it moves to the end.
          if (changed.includes(c.id)) changed.splice(changed.indexOf(c.id), 1)
          changed.push(c.id)
        }
        const result = new LiveResult(query)
        const events = result.resume(matching(states), changed)
        expect(events.map((e) => e.id)).toEqual(changed)
        apply(held, events)
        expect([...held].sort()).toEqual(matching(states))
        // And the result goes on from there.
        for (const id of ids) expect(result.has(id)).toBe(matching(states).includes(id))
      }),
      { seed: 2602, numRuns: 300 },
    )
  })

  it('replace: after entities went without entries, leave, enter and change bring the subscriber to the fresh matches (seeded)', () => {
    fc.assert(
      fc.property(fc.subarray(ids), fc.subarray(ids), fc.subarray(ids), (was, now, changed) => {
        const result = new LiveResult(query)
        result.replace(was, new Set())
        const held = new Set(was)
        const events = result.replace(now, new Set(changed))
        apply(held, events)
        expect([...held].sort()).toEqual([...now].sort())
        for (const e of events) {
          if (e.type === 'leave') expect(was.includes(e.id) && !now.includes(e.id)).toBe(true)
          if (e.type === 'enter') expect(!was.includes(e.id) && now.includes(e.id)).toBe(true)
          if (e.type === 'change') expect(was.includes(e.id) && now.includes(e.id) && changed.includes(e.id)).toBe(true)
        }
        // Members in both that did not change get nothing.
        expect(events.filter((e) => e.type === 'change').length).toBe(now.filter((id) => was.includes(id) && changed.includes(id)).length)
      }),
      { seed: 2603, numRuns: 300 },
    )
  })

  it('a live query takes where, sort, fields and explain; limit, cursor and count are refused naming the part', () => {
    expect(parseLiveQuery({ where: { a: 1 }, sort: ['b:desc'], fields: ['a'], explain: true }).sort).toHaveLength(1)
    for (const [body, part] of [
      [{ limit: 5 }, 'limit'],
      [{ cursor: 'x' }, 'cursor'],
      [{ count: false }, 'count'],
      [{ where: { a: { $bad: 1 } } }, 'where.a.$bad'],
    ] as const) {
      expect(() => parseLiveQuery(body)).toThrow(expect.objectContaining({ code: 'INVALID_QUERY', part }))
    }
  })
})
