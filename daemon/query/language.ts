/**
 * The query language (docs/queries.md): parsing and validating a query body, matching an entity,
 * sorting and projecting. Pure: no store, no I/O. Every refusal is a {@link QueryError} naming
 * the part of the query at fault (`where.status.$gte`, `sort[1]`).
 */
import type { JsonRecord, JsonValue } from '../../crdt/index.ts'
import { RequestError } from '../errors.ts'
import { compareJson, compareStrings, typeRank, type Collatable, type Direction } from './collation.ts'

/** Most nesting of `$and`/`$or`/`$not` and field objects in a `where`. */
export const MAX_WHERE_DEPTH = 8
/** Most conditions in a `where`, all levels together. */
export const MAX_CONDITIONS = 256
/** Most segments of a dotted path. */
export const MAX_PATH_SEGMENTS = 16
/** Most values of an `$in`/`$nin`. */
export const MAX_IN_VALUES = 1000
/** Most sort keys and projected fields. */
export const MAX_SORT_KEYS = 8
export const MAX_FIELDS = 64
/** Default and largest `limit`. */
export const DEFAULT_LIMIT = 100
export const MAX_LIMIT = 1000

/** A query refused: 400 INVALID_QUERY, the message starting with the part at fault. */
export class QueryError extends RequestError {
  readonly part: string
  constructor(part: string, message: string) {
    super('INVALID_QUERY', `${part}: ${message}`)
    this.part = part
  }
}

export type FieldOp = '$eq' | '$ne' | '$gt' | '$gte' | '$lt' | '$lte' | '$in' | '$nin' | '$exists' | '$prefix'
const FIELD_OPS: readonly string[] = ['$eq', '$ne', '$gt', '$gte', '$lt', '$lte', '$in', '$nin', '$exists', '$prefix', '$not']

/** A parsed condition. */
export type Cond =
  | { readonly kind: 'and'; readonly items: readonly Cond[] }
  | { readonly kind: 'or'; readonly items: readonly Cond[] }
  | { readonly kind: 'not'; readonly item: Cond }
  | { readonly kind: 'field'; readonly path: string; readonly segs: readonly string[]; readonly op: FieldOp; readonly value: JsonValue }

export interface SortKey {
  readonly path: string
  readonly segs: readonly string[]
  readonly dir: Direction
}

/** A query as parsed (docs/queries.md, Request). */
export interface Query {
  readonly where: Cond
  readonly sort: readonly SortKey[]
  readonly limit: number
  readonly fields?: readonly (readonly string[])[]
  readonly count: boolean
  readonly explain: boolean
  readonly cursor?: string
}

/** What a query reads of an entity. */
export interface QueryRow {
  readonly id: string
  /** Milliseconds; seen by queries as its ISO 8601 string, as the API shows it. */
  readonly updatedAt: number
  readonly value: JsonRecord
}

const SEGMENT = /^[^.]+$/

/** Splits and checks a dotted path; `part` names it in an error. */
export function parsePath(path: unknown, part: string): string[] {
  if (typeof path !== 'string' || path.length === 0 || path.length > 512) throw new QueryError(part, 'a field path is a non-empty string of at most 512 characters')
  const segs = path.split('.')
  if (segs.length > MAX_PATH_SEGMENTS) throw new QueryError(part, `a field path has at most ${MAX_PATH_SEGMENTS} segments`)
  for (const s of segs) if (!SEGMENT.test(s) || s.startsWith('$')) throw new QueryError(part, `${JSON.stringify(path)} is not a field path (empty segment, or a segment starting with $)`)
  return segs
}

/**
 * The value at a path: `id` and `updatedAt` are the entity's metadata, `value.<path>` and any other
 * path a field of its value (a numeric segment indexes an array). Undefined when missing.
 */
export function valueAt(row: QueryRow, segs: readonly string[]): Collatable {
  const [first] = segs
  if (segs.length === 1 && first === 'id') return row.id
  if (segs.length === 1 && first === 'updatedAt') return new Date(row.updatedAt).toISOString()
  let cur: Collatable = row.value
  for (let i = first === 'value' ? 1 : 0; i < segs.length; i++) {
    const seg = segs[i] as string
    if (Array.isArray(cur)) {
      if (!/^(0|[1-9]\d*)$/.test(seg)) return undefined
      cur = cur[Number(seg)]
    } else if (cur !== null && typeof cur === 'object') {
      cur = Object.hasOwn(cur, seg) ? cur[seg] : undefined
    } else return undefined
    if (cur === undefined) return undefined
  }
  return cur
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

interface ParseState {
  conditions: number
}

function parseWhere(where: unknown, part: string, depth: number, st: ParseState): Cond {
  if (depth > MAX_WHERE_DEPTH) throw new QueryError(part, `the where is nested deeper than ${MAX_WHERE_DEPTH} levels`)
  if (!isPlainObject(where)) throw new QueryError(part, 'expected an object')
  const items: Cond[] = []
  for (const [key, operand] of Object.entries(where)) {
    const at = `${part}.${key}`
    if (++st.conditions > MAX_CONDITIONS) throw new QueryError(at, `a where has at most ${MAX_CONDITIONS} conditions`)
    if (key === '$and' || key === '$or') {
      if (!Array.isArray(operand) || operand.length === 0 || operand.length > MAX_CONDITIONS) throw new QueryError(at, 'expected a non-empty array of conditions')
      const sub = operand.map((w, i) => parseWhere(w, `${at}[${i}]`, depth + 1, st))
      items.push({ kind: key === '$and' ? 'and' : 'or', items: sub })
    } else if (key === '$not') {
      items.push({ kind: 'not', item: parseWhere(operand, at, depth + 1, st) })
    } else if (key.startsWith('$')) {
      throw new QueryError(at, `unknown operator ${key} (top level takes $and, $or, $not, or field paths)`)
    } else {
      const segs = parsePath(key, at)
      items.push(parseField(key, segs, operand, at, depth + 1, st))
    }
  }
  return items.length === 1 ? (items[0] as Cond) : { kind: 'and', items }
}

function isOperatorObject(v: unknown): v is Record<string, unknown> {
  return isPlainObject(v) && Object.keys(v).length > 0 && Object.keys(v).every((k) => k.startsWith('$'))
}

function parseField(path: string, segs: readonly string[], operand: unknown, part: string, depth: number, st: ParseState): Cond {
  if (depth > MAX_WHERE_DEPTH) throw new QueryError(part, `the where is nested deeper than ${MAX_WHERE_DEPTH} levels`)
  if (!isOperatorObject(operand)) {
    if (isPlainObject(operand) && Object.keys(operand).some((k) => k.startsWith('$'))) throw new QueryError(part, 'an object mixes operators and fields (use $eq to compare with an object)')
    return { kind: 'field', path, segs, op: '$eq', value: jsonOperand(operand, part) }
  }
  const items: Cond[] = []
  for (const [op, value] of Object.entries(operand)) {
    const at = `${part}.${op}`
    if (!FIELD_OPS.includes(op)) throw new QueryError(at, `unknown operator ${op} (one of ${FIELD_OPS.join(' ')})`)
    if (++st.conditions > MAX_CONDITIONS) throw new QueryError(at, `a where has at most ${MAX_CONDITIONS} conditions`)
    switch (op) {
      case '$not':
        if (!isOperatorObject(value)) throw new QueryError(at, 'expected an object of operators')
        items.push({ kind: 'not', item: parseField(path, segs, value, at, depth + 1, st) })
        break
      case '$in':
      case '$nin':
        if (!Array.isArray(value) || value.length > MAX_IN_VALUES) throw new QueryError(at, `expected an array of at most ${MAX_IN_VALUES} values`)
        items.push({ kind: 'field', path, segs, op, value: value.map((v, i) => jsonOperand(v, `${at}[${i}]`)) })
        break
      case '$exists':
        if (typeof value !== 'boolean') throw new QueryError(at, 'expected true or false')
        items.push({ kind: 'field', path, segs, op, value })
        break
      case '$prefix':
        if (typeof value !== 'string') throw new QueryError(at, 'expected a string')
        items.push({ kind: 'field', path, segs, op, value })
        break
      default:
        items.push({ kind: 'field', path, segs, op: op as FieldOp, value: jsonOperand(value, at) })
    }
  }
  return items.length === 1 ? (items[0] as Cond) : { kind: 'and', items }
}

/** A JSON operand: finite numbers, well-formed values, depth bounded. */
function jsonOperand(v: unknown, part: string, depth = 0): JsonValue {
  if (depth > 32) throw new QueryError(part, 'a value nested too deep')
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return v
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new QueryError(part, 'a number must be finite')
    return v
  }
  if (Array.isArray(v)) return v.map((x) => jsonOperand(x, part, depth + 1))
  if (isPlainObject(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonOperand(x, part, depth + 1)]))
  throw new QueryError(part, 'not a JSON value')
}

/** Parses `[["f","desc"], "g", "h:desc"]`. */
export function parseSort(sort: unknown, part = 'sort'): SortKey[] {
  if (sort === undefined) return []
  if (!Array.isArray(sort) || sort.length > MAX_SORT_KEYS) throw new QueryError(part, `expected an array of at most ${MAX_SORT_KEYS} sort keys`)
  return sort.map((s, i) => {
    const at = `${part}[${i}]`
    let path: unknown
    let dir: unknown = 'asc'
    if (typeof s === 'string') {
      const colon = s.lastIndexOf(':')
      if (colon > 0 && (s.endsWith(':asc') || s.endsWith(':desc'))) [path, dir] = [s.slice(0, colon), s.slice(colon + 1)]
      else path = s
    } else if (Array.isArray(s) && (s.length === 1 || s.length === 2)) [path, dir = 'asc'] = s as unknown[]
    else throw new QueryError(at, 'expected "field", "field:desc" or ["field", "asc"|"desc"]')
    if (dir !== 'asc' && dir !== 'desc') throw new QueryError(at, 'the direction is "asc" or "desc"')
    return { path: path as string, segs: parsePath(path, at), dir }
  })
}

const QUERY_KEYS = new Set(['where', 'sort', 'limit', 'fields', 'count', 'explain', 'cursor'])

/** Parses and checks a query body. */
export function parseQuery(body: unknown): Query {
  if (!isPlainObject(body)) throw new QueryError('query', 'expected a JSON object')
  for (const key of Object.keys(body)) if (!QUERY_KEYS.has(key)) throw new QueryError(key, `unknown query member (one of ${[...QUERY_KEYS].join(', ')})`)
  const where = body.where === undefined ? ({ kind: 'and', items: [] } as Cond) : parseWhere(body.where, 'where', 1, { conditions: 0 })
  const sort = parseSort(body.sort)
  const limit = body.limit === undefined ? DEFAULT_LIMIT : body.limit
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw new QueryError('limit', `expected an integer from 1 to ${MAX_LIMIT}`)
  let fields: string[][] | undefined
  if (body.fields !== undefined) {
    if (!Array.isArray(body.fields) || body.fields.length === 0 || body.fields.length > MAX_FIELDS) throw new QueryError('fields', `expected a non-empty array of at most ${MAX_FIELDS} field paths`)
    fields = body.fields.map((f, i) => parsePath(f, `fields[${i}]`))
  }
  for (const flag of ['count', 'explain'] as const) {
    if (body[flag] !== undefined && typeof body[flag] !== 'boolean') throw new QueryError(flag, 'expected true or false')
  }
  if (body.cursor !== undefined && (typeof body.cursor !== 'string' || body.cursor.length === 0 || body.cursor.length > 16_384)) throw new QueryError('cursor', 'expected a cursor a previous answer gave as `next`')
  return {
    where,
    sort,
    limit,
    ...(fields && { fields }),
    count: body.count === true,
    explain: body.explain === true,
    ...(typeof body.cursor === 'string' && { cursor: body.cursor }),
  }
}

/** Same type class (booleans are one class): the range operators compare only within it. */
export function sameClass(a: Collatable, b: Collatable): boolean {
  const ra = typeRank(a)
  const rb = typeRank(b)
  return ra === rb || (ra >= 2 && ra <= 3 && rb >= 2 && rb <= 3)
}

/** Whether the entity matches the condition (docs/queries.md, Operators). */
export function matches(cond: Cond, row: QueryRow): boolean {
  switch (cond.kind) {
    case 'and':
      return cond.items.every((c) => matches(c, row))
    case 'or':
      return cond.items.some((c) => matches(c, row))
    case 'not':
      return !matches(cond.item, row)
    case 'field':
      return matchField(cond.op, cond.value, valueAt(row, cond.segs))
  }
}

function matchField(op: FieldOp, operand: JsonValue, v: Collatable): boolean {
  switch (op) {
    case '$eq':
      return v !== undefined && compareJson(v, operand) === 0
    case '$ne':
      return !(v !== undefined && compareJson(v, operand) === 0)
    case '$gt':
      return v !== undefined && sameClass(v, operand) && compareJson(v, operand) > 0
    case '$gte':
      return v !== undefined && sameClass(v, operand) && compareJson(v, operand) >= 0
    case '$lt':
      return v !== undefined && sameClass(v, operand) && compareJson(v, operand) < 0
    case '$lte':
      return v !== undefined && sameClass(v, operand) && compareJson(v, operand) <= 0
    case '$in':
      return v !== undefined && (operand as JsonValue[]).some((x) => compareJson(v, x) === 0)
    case '$nin':
      return !(v !== undefined && (operand as JsonValue[]).some((x) => compareJson(v, x) === 0))
    case '$exists':
      return (v !== undefined) === operand
    case '$prefix':
      return typeof v === 'string' && v.startsWith(operand as string)
  }
}

/**
 * The result order: by the sort keys, then by id in the direction of the last sort key (ascending
 * when there is none).
 */
export function compareRows(sort: readonly SortKey[], a: QueryRow, b: QueryRow): number {
  for (const k of sort) {
    const c = compareJson(valueAt(a, k.segs), valueAt(b, k.segs))
    if (c !== 0) return k.dir === 'asc' ? c : -c
  }
  const c = compareStrings(a.id, b.id)
  return sort.at(-1)?.dir === 'desc' ? -c : c
}

/** The value with only the given paths (nested objects rebuilt; missing paths left out). */
export function project(value: JsonRecord, fields: readonly (readonly string[])[]): JsonRecord {
  const out: JsonRecord = {}
  for (const segs of fields) {
    const rel = segs[0] === 'value' ? segs.slice(1) : segs
    if (rel.length === 0) return value
    const v = valueAt({ id: '', updatedAt: 0, value }, ['value', ...rel])
    if (v === undefined) continue
    let cur: JsonRecord = out
    for (let i = 0; i < rel.length - 1; i++) {
      const seg = rel[i] as string
      const next = Object.hasOwn(cur, seg) ? cur[seg] : undefined
      if (next === undefined || next === null || typeof next !== 'object' || Array.isArray(next)) cur[seg] = {}
      cur = cur[seg] as JsonRecord
    }
    cur[rel.at(-1) as string] = v
  }
  return out
}
