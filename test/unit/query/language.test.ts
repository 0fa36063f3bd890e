import { describe, expect, it } from 'vitest'
import { matches, parseQuery, project, type QueryRow } from '../../../daemon/query/language.ts'
import { planQuery } from '../../../daemon/query/planner.ts'

const row: QueryRow = { id: 'o1', updatedAt: Date.UTC(2026, 0, 31), value: { status: 'open', n: 3, tags: ['x', 'y'], owner: { name: 'ann' }, none: null, id: 'inner' } }
const hit = (where: unknown): boolean => matches(parseQuery({ where }).where, row)

describe('the query language (docs/queries.md, Operators)', () => {
  it('matches each operator as documented', () => {
    expect(hit({ status: 'open' })).toBe(true)
    expect(hit({ status: { $ne: 'open' } })).toBe(false)
    expect(hit({ missing: { $ne: 1 } })).toBe(true)
    expect(hit({ n: { $gt: 2, $lte: 3 } })).toBe(true)
    expect(hit({ n: { $gt: 'a' } })).toBe(false) // range operators stay within one type
    expect(hit({ status: { $gt: 2 } })).toBe(false)
    expect(hit({ n: { $in: [1, 3] } })).toBe(true)
    expect(hit({ missing: { $nin: [1] } })).toBe(true)
    expect(hit({ none: { $exists: true } })).toBe(true)
    expect(hit({ missing: { $exists: false } })).toBe(true)
    expect(hit({ status: { $prefix: 'op' } })).toBe(true)
    expect(hit({ 'owner.name': 'ann', 'tags.1': 'y' })).toBe(true)
    expect(hit({ tags: 'x' })).toBe(false) // no implicit array traversal
    expect(hit({ tags: ['x', 'y'] })).toBe(true)
    expect(hit({ $or: [{ n: 1 }, { $not: { status: 'closed' } }] })).toBe(true)
    expect(hit({ n: { $not: { $gt: 2 } } })).toBe(false)
    expect(hit({ $and: [{ n: 3 }, { status: 'closed' }] })).toBe(false)
    expect(hit({ id: 'o1', 'value.id': 'inner', updatedAt: { $gte: '2026-01-31' } })).toBe(true)
    expect(hit({ owner: { $eq: { name: 'ann' } } })).toBe(true)
  })

  it('refuses bad input naming the part at fault', () => {
    const part = (body: unknown): string => {
      try {
        parseQuery(body)
      } catch (error) {
        expect(error).toMatchObject({ code: 'INVALID_QUERY' })
        return (error as { part: string }).part
      }
      throw new Error('accepted')
    }
    expect(part({ where: { a: { $regex: 'x' } } })).toBe('where.a.$regex')
    expect(part({ where: { $where: 'x' } })).toBe('where.$where')
    expect(part({ where: { $or: [{ a: 1 }, { b: { $in: 'x' } }] } })).toBe('where.$or[1].b.$in')
    expect(part({ where: { a: { $prefix: 3 } } })).toBe('where.a.$prefix')
    expect(part({ where: { a: { $eq: 1, b: 2 } } })).toBe('where.a')
    expect(part({ where: { 'a..b': 1 } })).toBe('where.a..b')
    let deep: Record<string, unknown> = { a: 1 }
    for (let i = 0; i < 9; i++) deep = { $and: [deep] }
    expect(part({ where: deep })).toMatch(/^where(\.\$and\[0\])+$/)
    expect(part({ sort: [['a', 'sideways']] })).toBe('sort[0]')
    expect(part({ limit: 1001 })).toBe('limit')
    expect(part({ fields: ['ok', ''] })).toBe('fields[1]')
    expect(part({ select: [] })).toBe('select')
  })

  it('projects dotted paths', () => {
    expect(project({ a: { b: 1, c: 2 }, d: 3 }, [['a', 'b'], ['d'], ['nope']])).toEqual({ a: { b: 1 }, d: 3 })
  })

  it('plans by equality prefix, then range, then sort', () => {
    const q = parseQuery({ where: { status: 'open', n: { $gte: 2 } }, sort: [['n', 'desc']] })
    const indexes = [
      { name: 'byN', fields: [{ path: 'n', dir: 'asc' as const }] },
      { name: 'byStatus', fields: [{ path: 'status', dir: 'asc' as const }] },
      { name: 'byStatusN', fields: [{ path: 'status', dir: 'asc' as const }, { path: 'n', dir: 'asc' as const }] },
    ]
    const plan = planQuery(q.where, q.sort, indexes)
    expect(plan).toMatchObject({ kind: 'index', served: true, scans: [{ index: { name: 'byStatusN' }, ranged: true, order: 'reverse' }] })
    expect(planQuery(parseQuery({ where: { other: 1 } }).where, [], indexes)).toEqual({ kind: 'scan' })
  })

  it('plans an $in on indexed fields as a range per value, and an $or as the union of its branches when each has an index', () => {
    const indexes = [
      { name: 'byStatusN', fields: [{ path: 'status', dir: 'asc' as const }, { path: 'n', dir: 'desc' as const }] },
      { name: 'byOwner', fields: [{ path: 'owner', dir: 'asc' as const }] },
    ]
    const plan = (body: unknown): ReturnType<typeof planQuery> => {
      const q = parseQuery(body)
      return planQuery(q.where, q.sort, indexes)
    }
    // Two values, one range each, in key order; the sort on n is served, so the ranges are merged.
    const inPlan = plan({ where: { status: { $in: ['open', 'draft', 'open'] }, n: { $gt: 1 } }, sort: ['n:desc'] })
    expect(inPlan).toMatchObject({ kind: 'index', served: true, scans: [{ eq: ['draft'], ranged: true, order: 'forward' }, { eq: ['open'], ranged: true, order: 'forward' }] })
    // A sort key an $in binds is constant within each range: still served.
    expect(plan({ where: { status: { $in: ['a', 'b'] } }, sort: ['status:desc', 'n:desc'] })).toMatchObject({ served: true })
    // An $or whose branches each have an index: the union of their ranges, on both indexes.
    const orPlan = plan({ where: { $or: [{ status: { $in: ['a', 'b'] } }, { owner: 'ann' }] } })
    expect(orPlan.kind === 'index' && orPlan.scans.map((s) => [s.index.name, s.eq])).toEqual([
      ['byStatusN', ['a']],
      ['byStatusN', ['b']],
      ['byOwner', ['ann']],
    ])
    // A branch no index serves: a scan (reading every range and then all the rest would be no better).
    expect(plan({ where: { $or: [{ status: 'a' }, { other: 1 }] } })).toEqual({ kind: 'scan' })
    // An equality at the top narrows already: the $or under it is matched in memory.
    expect(plan({ where: { owner: 'bob', $or: [{ status: 'a' }, { status: 'b' }] } })).toMatchObject({ scans: [{ index: { name: 'byOwner' }, eq: ['bob'] }] })
    // More ranges than MAX_SCANS: not bound by the $in.
    expect(plan({ where: { status: { $in: Array.from({ length: 65 }, (_, i) => `s${i}`) } } })).toEqual({ kind: 'scan' })
  })
})
