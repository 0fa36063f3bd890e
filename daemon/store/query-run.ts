/**
 * Runs a query (docs/queries.md) on one consistent view of the store: by the index the planner
 * picks (daemon/query/planner.ts), or by a scan of the namespace. Every entity read is matched
 * against the whole `where`, so an index only narrows what is read. A query that would examine
 * more than `maxScan` entities is refused (QUERY_NEEDS_INDEX) instead of stalling the node.
 */
import { encodeDirected, encodeTuple } from '../query/collation.ts'
import { matches, project, valueAt, type Query, type QueryRow } from '../query/language.ts'
import { decodeCursor, encodeCursor, orderKey, planQuery, type IndexScan, type Plan, type QueryCursor } from '../query/planner.ts'
import { QueryNeedsIndexError } from '../errors.ts'
import type { KvReader } from '../storage/kv-store.ts'
import { decodeMeta, type EntityMeta } from './entity-meta.ts'
import { idDirection, type NamedIndex } from './indexes.ts'
import { entityMetaKey, entityMetaRange, indexPrefix, parseEntityMetaKey } from './keys.ts'
import type { EntityView } from './types.ts'
import { viewOf } from './views.ts'

/** Keys read per round trip of an index scan. */
const INDEX_CHUNK = 256
const textDecoder = new TextDecoder()

/** The plan as an answer shows it. */
export interface PlanView {
  readonly type: 'index' | 'scan'
  readonly index?: string
  /** The index key range read: how many leading fields are equalities, and whether the next one is a range. */
  readonly equalityFields?: number
  readonly range?: boolean
  /** How many key ranges were read (more than one: an `$in` on an indexed field, or an `$or`), merged and deduplicated. */
  readonly ranges?: number
  /** `index`: results come in index order; `memory`: all matches were sorted. */
  readonly order: 'index' | 'memory'
  readonly keysScanned: number
  readonly entitiesExamined: number
}

export interface QueryAnswer {
  readonly items?: EntityView[]
  readonly count?: number
  readonly next?: string
  readonly plan?: PlanView
}

export interface QueryRunOptions {
  /** The namespace's complete indexes. */
  readonly indexes: readonly NamedIndex[]
  readonly maxScan: number
  /** Live entities of the namespace (a scan of more is refused before it starts). */
  readonly liveCount: number
}

interface Match {
  readonly row: QueryRow
  readonly meta: EntityMeta
}

export async function runQuery(reader: KvReader, ns: string, query: Query, options: QueryRunOptions): Promise<QueryAnswer> {
  const plan = planQuery(query.where, query.sort, options.indexes)
  const cursor = query.cursor !== undefined && !query.count ? decodeCursor(query.cursor, query.sort.length) : undefined
  const after = cursor !== undefined ? orderKey(cursor.values, cursor.id, query.sort) : undefined
  const stats = { keysScanned: 0, entitiesExamined: 0 }
  const served = plan.kind === 'index' && plan.served && !query.count
  const want = served ? query.limit + 1 : Infinity
  const found: Match[] = []
  /** Ids already counted: ranges of an `$in` or an `$or` may yield an entity more than once. */
  const seen = new Set<string>()
  let count = 0
  const examine = (id: string, meta: EntityMeta | undefined): Match | undefined => {
    if (!meta || meta.deleted) return undefined
    if (++stats.entitiesExamined > options.maxScan) throw new QueryNeedsIndexError(ns, stats.entitiesExamined, options.maxScan)
    const row = { id, updatedAt: meta.updatedAt, value: meta.value }
    return matches(query.where, row) ? { row, meta } : undefined
  }
  const keep = (m: Match): void => {
    if (seen.has(m.row.id)) return
    seen.add(m.row.id)
    count++
    if (!query.count) found.push(m)
  }

  if (plan.kind === 'scan') {
    if (options.liveCount > options.maxScan) throw new QueryNeedsIndexError(ns, options.liveCount, options.maxScan)
    for await (const [key, value] of reader.iterate(entityMetaRange(ns))) {
      stats.keysScanned++
      const m = examine(parseEntityMetaKey(key).id, decodeMeta(value))
      if (m) keep(m)
    }
  } else {
    // One range alone seeks past the cursor; several are merged by the result order, which skips
    // what the cursor has passed.
    const seek = plan.scans.length === 1 ? cursor : undefined
    const streams = plan.scans.map((scan) => readScan(reader, ns, scan, query, seek, stats, examine))
    try {
      if (served) {
        const keyOf = (m: Match): string => orderKey(query.sort.map((k) => valueAt(m.row, k.segs)), m.row.id, query.sort)
        const heads = await Promise.all(streams.map(async (s) => (await s.next()).value))
        const keys = heads.map((m) => (m ? keyOf(m) : undefined))
        while (found.length < want) {
          let best = -1
          for (let i = 0; i < keys.length; i++) if (keys[i] !== undefined && (best < 0 || (keys[i] as string) < (keys[best] as string))) best = i
          if (best < 0) break
          const m = heads[best] as Match
          const key = keys[best] as string
          heads[best] = (await (streams[best] as AsyncGenerator<Match>).next()).value
          keys[best] = heads[best] ? keyOf(heads[best] as Match) : undefined
          if (after === undefined || key > after) keep(m)
        }
      } else {
        for (const stream of streams) for await (const m of stream) keep(m)
      }
    } finally {
      await Promise.all(streams.map((s) => s.return(undefined)))
    }
  }

  const planView = viewOfPlan(plan, served, stats)
  const shownPlan = query.explain ? { plan: planView } : plan.kind === 'scan' ? { plan: { type: 'scan' as const, order: 'memory' as const, keysScanned: stats.keysScanned, entitiesExamined: stats.entitiesExamined } } : {}
  if (query.count) return { count, ...shownPlan }

  let page: Match[]
  if (served) page = found
  else {
    const keyed = found.map((m) => ({ m, key: orderKey(query.sort.map((k) => valueAt(m.row, k.segs)), m.row.id, query.sort) }))
    page = keyed
      .filter((k) => after === undefined || k.key > after)
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
      .map((k) => k.m)
  }
  const more = page.length > query.limit
  page = page.slice(0, query.limit)
  const items = page.map(({ row, meta }) => {
    const view = viewOf(ns, row.id, meta)
    return query.fields ? { ...view, value: project(meta.value, query.fields) } : view
  })
  const last = page.at(-1)
  const next = more && last ? encodeCursor({ values: query.sort.map((k) => valueAt(last.row, k.segs)), id: last.row.id }) : undefined
  return { items, ...(next !== undefined && { next }), ...shownPlan }
}

/**
 * The matches one index range yields, in its read order; with `cursor` (a served plan of one
 * range), starting past it.
 */
async function* readScan(
  reader: KvReader,
  ns: string,
  scan: IndexScan,
  query: Query,
  cursor: QueryCursor | undefined,
  stats: { keysScanned: number },
  examine: (id: string, meta: EntityMeta | undefined) => Match | undefined,
): AsyncGenerator<Match> {
  const prefix = indexPrefix(ns, scan.index.name)
  const gte = prefix + scan.range.gte
  let lt = prefix + scan.range.lt
  let gt: string | undefined
  if (scan.order !== undefined && cursor !== undefined) {
    // Seek past the cursor: its index key is the equality values, its sort values and its id.
    const rest = scan.index.fields.slice(scan.eq.length)
    const restValues = rest.map((f) => cursor.values[query.sort.findIndex((k) => k.path === f.path)])
    const seek = prefix + encodeTuple(scan.eq, scan.index.fields.map((f) => f.dir)) + encodeTuple(restValues, rest.map((f) => f.dir)) + encodeDirected(cursor.id, idDirection(scan.index.fields))
    if (scan.order === 'forward' && seek >= gte) gt = seek
    if (scan.order === 'reverse' && seek < lt) lt = seek
  }
  const range = gt !== undefined ? { gt, lt } : { gte, lt }
  let ids: string[] = []
  const flush = async function* (): AsyncGenerator<Match> {
    const metas = await reader.getMany(ids.map((id) => entityMetaKey(ns, id)))
    const chunk = ids
    ids = []
    for (const [i, id] of chunk.entries()) {
      const bytes = metas[i]
      const m = examine(id, bytes ? decodeMeta(bytes) : undefined)
      if (m) yield m
    }
  }
  for await (const [, value] of reader.iterate({ ...range, reverse: scan.order === 'reverse' })) {
    stats.keysScanned++
    ids.push(textDecoder.decode(value))
    if (ids.length === INDEX_CHUNK) yield* flush()
  }
  if (ids.length > 0) yield* flush()
}

function viewOfPlan(plan: Plan, served: boolean, stats: { keysScanned: number; entitiesExamined: number }): PlanView {
  if (plan.kind === 'scan') return { type: 'scan', order: 'memory', ...stats }
  const first = plan.scans[0]
  return {
    type: 'index',
    index: [...new Set(plan.scans.map((s) => s.index.name))].join('+'),
    equalityFields: first?.eq.length ?? 0,
    range: plan.scans.some((s) => s.ranged),
    ranges: plan.scans.length,
    order: served ? 'index' : 'memory',
    ...stats,
  }
}
