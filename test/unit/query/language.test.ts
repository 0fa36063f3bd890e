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
    expect(plan).toMatchObject({ kind: 'index', index: { name: 'byStatusN' }, ranged: true, order: 'reverse' })
    expect(planQuery(parseQuery({ where: { other: 1 } }).where, [], indexes)).toEqual({ kind: 'scan' })
  })
})
