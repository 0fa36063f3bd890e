/**
 * Runs a query (docs/queries.md) on one consistent view of the store: by the index the planner
 * picks (daemon/query/planner.ts), or by a scan of the namespace. Every entity read is matched
 * against the whole `where`, so an index only narrows what is read. A query that would examine
 * more than `maxScan` entities is refused (QUERY_NEEDS_INDEX) instead of stalling the node.
 */
import { encodeDirected, encodeTuple } from '../query/collation.ts'
import { matches, project, valueAt, type Query, type QueryRow } from '../query/language.ts'
import { decodeCursor, encodeCursor, orderKey, planQuery, type Plan } from '../query/planner.ts'
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
  const stats = { keysScanned: 0, entitiesExamined: 0 }
  const served = plan.kind === 'index' && plan.order !== undefined && !query.count
  const want = served ? query.limit + 1 : Infinity
  const found: Match[] = []
  let count = 0
  const examine = (id: string, meta: EntityMeta | undefined): void => {
    if (!meta || meta.deleted) return
    if (++stats.entitiesExamined > options.maxScan) throw new QueryNeedsIndexError(ns, stats.entitiesExamined, options.maxScan)
    const row = { id, updatedAt: meta.updatedAt, value: meta.value }
    if (!matches(query.where, row)) return
    count++
    if (!query.count) found.push({ row, meta })
  }

  if (plan.kind === 'scan') {
    if (options.liveCount > options.maxScan) throw new QueryNeedsIndexError(ns, options.liveCount, options.maxScan)
    for await (const [key, value] of reader.iterate(entityMetaRange(ns))) {
      stats.keysScanned++
      examine(parseEntityMetaKey(key).id, decodeMeta(value))
    }
  } else {
    const prefix = indexPrefix(ns, plan.index.name)
    const gte = prefix + plan.range.gte
    let lt = prefix + plan.range.lt
    let gt: string | undefined
    if (served && cursor !== undefined) {
      // Seek past the cursor: its index key is the equality values, its sort values and its id.
      const rest = plan.index.fields.slice(plan.eq.length)
      const restValues = rest.map((f) => cursor.values[query.sort.findIndex((k) => k.path === f.path)])
      const seek = prefix + encodeTuple(plan.eq, plan.index.fields.map((f) => f.dir)) + encodeTuple(restValues, rest.map((f) => f.dir)) + encodeDirected(cursor.id, idDirection(plan.index.fields))
      if (plan.order === 'forward' && seek >= gte) gt = seek
      if (plan.order === 'reverse' && seek < lt) lt = seek
    }
    const range = gt !== undefined ? { gt, lt } : { gte, lt }
    let ids: string[] = []
    const flush = async (): Promise<void> => {
      const metas = await reader.getMany(ids.map((id) => entityMetaKey(ns, id)))
      ids.forEach((id, i) => {
        if (found.length < want) {
          const bytes = metas[i]
          examine(id, bytes ? decodeMeta(bytes) : undefined)
        }
      })
      ids = []
    }
    for await (const [, value] of reader.iterate({ ...range, reverse: plan.order === 'reverse' })) {
      stats.keysScanned++
      ids.push(textDecoder.decode(value))
      if (ids.length === INDEX_CHUNK) await flush()
      if (found.length >= want) break
    }
    if (ids.length > 0 && found.length < want) await flush()
  }

  const planView = viewOfPlan(plan, served, stats)
  const shownPlan = query.explain ? { plan: planView } : plan.kind === 'scan' ? { plan: { type: 'scan' as const, order: 'memory' as const, keysScanned: stats.keysScanned, entitiesExamined: stats.entitiesExamined } } : {}
  if (query.count) return { count, ...shownPlan }

  let page: Match[]
  if (served) page = found
  else {
    const keyed = found.map((m) => ({ m, key: orderKey(query.sort.map((k) => valueAt(m.row, k.segs)), m.row.id, query.sort) }))
    const after = cursor !== undefined ? orderKey(cursor.values, cursor.id, query.sort) : undefined
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

function viewOfPlan(plan: Plan, served: boolean, stats: { keysScanned: number; entitiesExamined: number }): PlanView {
  if (plan.kind === 'scan') return { type: 'scan', order: 'memory', ...stats }
  return {
    type: 'index',
    index: plan.index.name,
    equalityFields: plan.eq.length,
    range: plan.ranged,
    order: served ? 'index' : 'memory',
    ...stats,
  }
}
