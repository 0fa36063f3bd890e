/**
 * The query planner (docs/queries.md, Plans): picks the index that serves a query best, by the
 * length of its equality prefix, then one range on the next field, then whether its order is the
 * query's sort; without a useful index, a scan. Pure: it returns key ranges relative to the
 * index's key prefix (daemon/store/query-run.ts reads them).
 */
import type { JsonValue } from '../../crdt/index.ts'
import { AFTER, classRangeDirected, encodeDirected, encodeTuple, prefixRangeDirected, type Collatable, type Direction } from './collation.ts'
import { QueryError, type Cond, type SortKey } from './language.ts'

/** An index field: a path and its direction. */
export interface IndexField {
  readonly path: string
  readonly dir: Direction
}

/** An index as the planner sees it. */
export interface PlannableIndex {
  readonly name: string
  readonly fields: readonly IndexField[]
}

/** A range of index keys after the index's key prefix: [gte, lt). */
export interface KeyRange {
  readonly gte: string
  readonly lt: string
}

export type Plan =
  | { readonly kind: 'scan' }
  | {
      readonly kind: 'index'
      readonly index: PlannableIndex
      /** Values of the first `eq.length` index fields. */
      readonly eq: readonly JsonValue[]
      /** Key range after the index prefix. */
      readonly range: KeyRange
      /** Whether the field after the equalities is bounded by a range. */
      readonly ranged: boolean
      /** How the index order serves the sort: read forward, backward, or not at all (sorted in memory). */
      readonly order: 'forward' | 'reverse' | undefined
    }

interface PathConstraint {
  eq?: JsonValue
  ranges: Cond[]
}

/** The top-level conjunction's field conditions, per path. */
function constraints(where: Cond): Map<string, PathConstraint> {
  const out = new Map<string, PathConstraint>()
  const visit = (c: Cond): void => {
    if (c.kind === 'and') c.items.forEach(visit)
    if (c.kind !== 'field') return
    const pc = out.get(c.path) ?? { ranges: [] }
    out.set(c.path, pc)
    if (c.op === '$eq' && pc.eq === undefined) pc.eq = c.value
    else if (c.op === '$in' && (c.value as JsonValue[]).length === 1 && pc.eq === undefined) pc.eq = (c.value as JsonValue[])[0] as JsonValue
    else if (['$gt', '$gte', '$lt', '$lte', '$prefix'].includes(c.op)) pc.ranges.push(c)
  }
  visit(where)
  return out
}

/** The intersection of the ranges, in `dir`'s encoding of one value. */
function rangeOf(conds: readonly Cond[], dir: Direction): KeyRange {
  let gte = ''
  let lt = AFTER
  const narrow = (r: { gte?: string; lt?: string }): void => {
    if (r.gte !== undefined && r.gte > gte) gte = r.gte
    if (r.lt !== undefined && r.lt < lt) lt = r.lt
  }
  for (const c of conds) {
    if (c.kind !== 'field') continue
    if (c.op === '$prefix') {
      narrow(prefixRangeDirected(c.value as string, dir))
      continue
    }
    const x = c.value as Collatable
    narrow(classRangeDirected(x, dir))
    const e = encodeDirected(x, dir)
    // Ascending: greater values have greater encodings; descending: smaller.
    const up = dir === 'asc'
    switch (c.op) {
      case '$gt':
        narrow(up ? { gte: e + AFTER } : { lt: e })
        break
      case '$gte':
        narrow(up ? { gte: e } : { lt: e + AFTER })
        break
      case '$lt':
        narrow(up ? { lt: e } : { gte: e + AFTER })
        break
      case '$lte':
        narrow(up ? { lt: e + AFTER } : { gte: e })
        break
    }
  }
  return { gte, lt }
}

/** Picks the best index for `where` and `sort` among `indexes` (complete ones only). */
export function planQuery(where: Cond, sort: readonly SortKey[], indexes: readonly PlannableIndex[]): Plan {
  const cs = constraints(where)
  let best: { score: number[]; plan: Plan } | undefined
  const lastDir: Direction = sort.at(-1)?.dir ?? 'asc'
  for (const index of indexes) {
    const eq: JsonValue[] = []
    for (const f of index.fields) {
      const pc = cs.get(f.path)
      if (pc?.eq === undefined) break
      eq.push(pc.eq)
    }
    const e = eq.length
    const next = index.fields[e]
    const ranges = next ? (cs.get(next.path)?.ranges ?? []) : []
    const rest = index.fields.slice(e)
    const effective = sort.filter((k) => cs.get(k.path)?.eq === undefined)
    let order: 'forward' | 'reverse' | undefined
    if (effective.length === rest.length && effective.every((k, i) => k.path === rest[i]?.path)) {
      const same = effective.every((k, i) => k.dir === rest[i]?.dir)
      const flipped = effective.every((k, i) => k.dir !== rest[i]?.dir)
      // The id ends each key in the direction of the index's last field (daemon/store/indexes.ts).
      const idDir = index.fields.at(-1)?.dir ?? 'asc'
      if (same && idDir === lastDir) order = 'forward'
      else if (flipped && idDir !== lastDir) order = 'reverse'
    }
    const score = [e, ranges.length > 0 ? 1 : 0, order ? 1 : 0, -index.fields.length]
    if (score[0] === 0 && score[1] === 0 && score[2] === 0) continue
    if (best && compareScores(score, best.score) <= 0) continue
    const range = next && ranges.length > 0 ? rangeOf(ranges, next.dir) : { gte: '', lt: AFTER }
    const prefix = encodeTuple(eq, index.fields.map((f) => f.dir))
    best = { score, plan: { kind: 'index', index, eq, range: { gte: prefix + range.gte, lt: prefix + range.lt }, ranged: ranges.length > 0, order } }
  }
  return best?.plan ?? { kind: 'scan' }
}

function compareScores(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i++) if ((a[i] as number) !== (b[i] as number)) return (a[i] as number) - (b[i] as number)
  return 0
}

// ---- cursors ----------------------------------------------------------------------------------

/** Where a page ended: the last item's sort values (missing ones as absent) and id. */
export interface QueryCursor {
  readonly values: readonly Collatable[]
  readonly id: string
}

/** Opaque cursor text (base64url JSON). */
export function encodeCursor(c: QueryCursor): string {
  return Buffer.from(JSON.stringify({ v: c.values.map((v) => (v === undefined ? [] : [v])), i: c.id })).toString('base64url')
}

/** Reads a cursor of a query with `sortKeys` sort keys; INVALID_QUERY naming `cursor` when it is not one. */
export function decodeCursor(text: string, sortKeys: number): QueryCursor {
  try {
    const raw = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as { v: unknown; i: unknown }
    if (!Array.isArray(raw.v) || raw.v.length !== sortKeys || typeof raw.i !== 'string') throw new Error('shape')
    const values = raw.v.map((x: unknown) => {
      if (!Array.isArray(x) || x.length > 1) throw new Error('shape')
      return x.length === 0 ? undefined : (x[0] as JsonValue)
    })
    return { values, id: raw.i }
  } catch {
    throw new QueryError('cursor', 'not a cursor of this query (give the `next` of the previous page, with the same sort)')
  }
}

/**
 * The result-order key of a row from its sort values and id: string order of these keys is the
 * result order (language.ts compareRows).
 */
export function orderKey(values: readonly Collatable[], id: string, sort: readonly SortKey[]): string {
  const dir = sort.at(-1)?.dir ?? 'asc'
  return encodeTuple(values, sort.map((k) => k.dir)) + encodeDirected(id, dir)
}
