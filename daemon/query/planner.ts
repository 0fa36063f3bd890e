/**
 * The query planner (docs/queries.md, Plans): picks the index that serves a query best, by the
 * length of its equality prefix, then one range on the next field, then whether its order is the
 * query's sort; without a useful index, a scan. Pure: it returns key ranges relative to the
 * index's key prefix (daemon/store/query-run.ts reads them).
 */
import type { JsonValue } from '../../crdt/index.ts'
import { AFTER, classRangeDirected, encodeDirected, encodeJson, encodeTuple, prefixRangeDirected, type Collatable, type Direction } from './collation.ts'
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

/** One read of an index: a key range (after the index's key prefix) and the direction it is read in. */
export interface IndexScan {
  readonly index: PlannableIndex
  /** Values of the first `eq.length` index fields in this range. */
  readonly eq: readonly JsonValue[]
  /** Key range after the index prefix. */
  readonly range: KeyRange
  /** Whether the field after the equalities is bounded by a range. */
  readonly ranged: boolean
  /** How the index order serves the sort: read forward, backward, or not at all. */
  readonly order: 'forward' | 'reverse' | undefined
}

/**
 * A scan of the namespace, or reads of index ranges: one, or several (an `$in` on an indexed
 * field: a range per value; an `$or`: the ranges of each branch) whose entities are merged and
 * deduplicated. `served`: every range comes in the result order, so the ranges are merged in
 * that order and reading stops after a page; otherwise the matches are sorted in memory.
 */
export type Plan = { readonly kind: 'scan' } | { readonly kind: 'index'; readonly scans: readonly IndexScan[]; readonly served: boolean }

/** Most ranges one plan reads (values of `$in`s times `$or` branches); a query needing more is planned without them. */
export const MAX_SCANS = 64

interface PathConstraint {
  eq?: JsonValue
  /** The distinct values of an `$in` of more than one value. */
  in?: JsonValue[]
  ranges: Cond[]
}

/** The conjunction's field conditions, per path (top level of `where`, and `$and`s in it), added to `into`. */
function constraints(where: Cond, into: Map<string, PathConstraint> = new Map()): Map<string, PathConstraint> {
  const out = into
  const visit = (c: Cond): void => {
    if (c.kind === 'and') c.items.forEach(visit)
    if (c.kind !== 'field') return
    const pc = out.get(c.path) ?? { ranges: [] }
    out.set(c.path, pc)
    const values = c.op === '$in' ? (c.value as JsonValue[]) : []
    if (c.op === '$eq' && pc.eq === undefined) pc.eq = c.value
    else if (c.op === '$in' && values.length === 1 && pc.eq === undefined) pc.eq = values[0] as JsonValue
    else if (c.op === '$in' && pc.in === undefined) pc.in = [...new Map(values.map((v) => [encodeJson(v), v])).values()]
    else if (['$gt', '$gte', '$lt', '$lte', '$prefix'].includes(c.op)) pc.ranges.push(c)
  }
  visit(where)
  return out
}

function copyConstraints(cs: Map<string, PathConstraint>): Map<string, PathConstraint> {
  return new Map([...cs].map(([path, pc]) => [path, { ...pc, ranges: [...pc.ranges] }]))
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

interface Candidate {
  /** Equality fields, range, order, fewer ranges, fewer fields: greater is better. */
  readonly score: readonly number[]
  readonly scans: IndexScan[]
  readonly served: boolean
}

/** Whether a candidate narrows what is read (by equalities or a range), not only gives the order. */
const narrows = (c: Candidate | undefined): c is Candidate => c !== undefined && ((c.score[0] as number) > 0 || (c.score[1] as number) > 0)

/** The best index for one conjunction of constraints. */
function planConjunction(cs: Map<string, PathConstraint>, sort: readonly SortKey[], indexes: readonly PlannableIndex[]): Candidate | undefined {
  let best: Candidate | undefined
  const lastDir: Direction = sort.at(-1)?.dir ?? 'asc'
  for (const index of indexes) {
    // Each leading field bound by an equality, or by an `$in`: one range per combination of values.
    let prefixes: JsonValue[][] = [[]]
    const inBound = new Set<string>()
    for (const f of index.fields) {
      const pc = cs.get(f.path)
      if (pc?.eq !== undefined) prefixes = prefixes.map((p) => [...p, pc.eq as JsonValue])
      else if (pc?.in !== undefined && prefixes.length * pc.in.length <= MAX_SCANS) {
        const values = pc.in
        prefixes = prefixes.flatMap((p) => values.map((v) => [...p, v]))
        inBound.add(f.path)
      } else break
    }
    // The leading fields the loop above bound.
    const bound = index.fields.findIndex((f) => cs.get(f.path)?.eq === undefined && !inBound.has(f.path))
    const eqCount = bound < 0 ? index.fields.length : bound
    const next = index.fields[eqCount]
    const ranges = next ? (cs.get(next.path)?.ranges ?? []) : []
    const rest = index.fields.slice(eqCount)
    // Sort keys bound by an equality are constant; those bound by an `$in` are constant within each range (the ranges are merged in the result order).
    const effective = sort.filter((k) => cs.get(k.path)?.eq === undefined && !inBound.has(k.path))
    let order: 'forward' | 'reverse' | undefined
    if (effective.length === rest.length && effective.every((k, i) => k.path === rest[i]?.path)) {
      const same = effective.every((k, i) => k.dir === rest[i]?.dir)
      const flipped = effective.every((k, i) => k.dir !== rest[i]?.dir)
      // The id ends each key in the direction of the index's last field (daemon/store/indexes.ts).
      const idDir = index.fields.at(-1)?.dir ?? 'asc'
      if (same && idDir === lastDir) order = 'forward'
      else if (flipped && idDir !== lastDir) order = 'reverse'
    }
    const score = [eqCount, ranges.length > 0 ? 1 : 0, order ? 1 : 0, -prefixes.length, -index.fields.length]
    if (score[0] === 0 && score[1] === 0 && score[2] === 0) continue
    if (best && compareScores(score, best.score) <= 0) continue
    const range = next && ranges.length > 0 ? rangeOf(ranges, next.dir) : { gte: '', lt: AFTER }
    const dirs = index.fields.map((f) => f.dir)
    const scans = prefixes.map((eq) => {
      const prefix = encodeTuple(eq, dirs)
      return { index, eq, range: { gte: prefix + range.gte, lt: prefix + range.lt }, ranged: ranges.length > 0, order }
    })
    // Ranges in key order: read one after the other, they come in index order too.
    scans.sort((a, b) => (a.range.gte < b.range.gte ? -1 : a.range.gte > b.range.gte ? 1 : 0))
    best = { score, scans, served: order !== undefined }
  }
  return best
}

/**
 * Picks the best plan for `where` and `sort` among `indexes` (complete ones only): the best index
 * for the conjunction at the top of `where`; when none narrows the read and `where` is (or holds
 * at its top) an `$or`, the union of the best index for each branch, if every branch has one.
 */
export function planQuery(where: Cond, sort: readonly SortKey[], indexes: readonly PlannableIndex[]): Plan {
  const cs = constraints(where)
  const base = planConjunction(cs, sort, indexes)
  if (!narrows(base)) {
    const or = where.kind === 'or' ? where : where.kind === 'and' ? where.items.find((c) => c.kind === 'or') : undefined
    if (or?.kind === 'or') {
      const branches = or.items.map((b) => planConjunction(constraints(b, copyConstraints(cs)), sort, indexes))
      if (branches.every(narrows) && branches.reduce((n, b) => n + (b as Candidate).scans.length, 0) <= MAX_SCANS) {
        const union = branches as Candidate[]
        return { kind: 'index', scans: union.flatMap((b) => b.scans), served: union.every((b) => b.served) }
      }
    }
  }
  return base ? { kind: 'index', scans: base.scans, served: base.served } : { kind: 'scan' }
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
