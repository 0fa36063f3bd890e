/**
 * Secondary indexes (docs/queries.md, Indexes): their catalog (the `m\0indexes` record), the entry
 * an entity has in each, and the batch ops that keep entries in step with entity changes. Every
 * entry is written in the same batch as the entity change it follows (group-batch.ts,
 * maintenance.ts, index-jobs.ts).
 */
import { shouldStaleIndex } from '../failpoints.ts'
import { encodeDirected, encodeTuple } from '../query/collation.ts'
import { parsePath, QueryError, valueAt } from '../query/language.ts'
import type { IndexField } from '../query/planner.ts'
import type { KvBatchOp } from '../storage/kv-store.ts'
import { utf8, type EntityMeta } from './entity-meta.ts'
import { indexPrefix, META_INDEXES } from './keys.ts'
import { jsonRecord } from './meta-records.ts'

/** Most fields of one index, and most indexes of one namespace. */
export const MAX_INDEX_FIELDS = 8
export const MAX_INDEXES_PER_NAMESPACE = 32
const INDEX_NAME = /^[A-Za-z0-9_-]{1,64}$/

/** One index as stored. */
export interface StoredIndex {
  readonly fields: readonly IndexField[]
  /** Declared in the config (`namespaces.X.indexes`) or created through the API. */
  readonly source: 'config' | 'api'
  /** Only a `ready` index serves queries; a `building` one is filled in the background. */
  readonly state: 'building' | 'ready'
  /** Entities the build has indexed so far. */
  readonly built: number
  /** While building: the id of the last entity indexed (absent: none yet). */
  readonly after?: string
}

/** Per namespace, per index name. */
export type IndexCatalog = Readonly<Record<string, Readonly<Record<string, StoredIndex>>>>

export const indexCatalogRecord = jsonRecord<IndexCatalog>(META_INDEXES, () => ({}))

/** An index of a namespace, with its name. */
export interface NamedIndex extends StoredIndex {
  readonly name: string
}

/** The indexes of `ns` (every state). */
export function indexesOf(catalog: IndexCatalog, ns: string): NamedIndex[] {
  const own = Object.hasOwn(catalog, ns) ? catalog[ns] : undefined
  return own ? Object.entries(own).map(([name, index]) => ({ name, ...index })) : []
}

/** Checks an index name and definition (INVALID_QUERY naming the part at fault). */
export function parseIndexDefinition(name: string, fields: unknown): IndexField[] {
  if (!INDEX_NAME.test(name)) throw new QueryError('name', 'an index name is 1 to 64 letters, digits, "_" or "-"')
  if (!Array.isArray(fields) || fields.length === 0 || fields.length > MAX_INDEX_FIELDS) throw new QueryError('fields', `expected 1 to ${MAX_INDEX_FIELDS} fields`)
  const seen = new Set<string>()
  return fields.map((f: unknown, i) => {
    const part = `fields[${i}]`
    let path: unknown = f
    let dir: unknown = 'asc'
    if (Array.isArray(f)) [path, dir = 'asc'] = f as unknown[]
    else if (f !== null && typeof f === 'object') ({ path, dir = 'asc' } = f as { path?: unknown; dir?: unknown })
    else if (typeof f === 'string' && (f.endsWith(':desc') || f.endsWith(':asc'))) [path, dir] = [f.slice(0, f.lastIndexOf(':')), f.slice(f.lastIndexOf(':') + 1)]
    parsePath(path, part)
    if (dir !== 'asc' && dir !== 'desc') throw new QueryError(part, 'the direction is "asc" or "desc"')
    if (seen.has(path as string)) throw new QueryError(part, `${JSON.stringify(path)} is indexed twice`)
    seen.add(path as string)
    return { path: path as string, dir }
  })
}

/** Same fields, same directions. */
export function sameFields(a: readonly IndexField[], b: readonly IndexField[]): boolean {
  return a.length === b.length && a.every((f, i) => f.path === b[i]?.path && f.dir === b[i]?.dir)
}

/** The key of an entity's entry in an index (undefined: a deleted entity has none). */
export function indexEntryKey(ns: string, index: NamedIndex, id: string, meta: EntityMeta | undefined): string | undefined {
  if (!meta || meta.deleted) return undefined
  const row = { id, updatedAt: meta.updatedAt, value: meta.value }
  const values = index.fields.map((f) => valueAt(row, f.path.split('.')))
  return indexPrefix(ns, index.name) + encodeTuple(values, index.fields.map((f) => f.dir)) + encodeDirected(id, idDirection(index.fields))
}

/**
 * The direction of the id at the end of an index key: that of the index's last field, so that
 * ties come in the order of the result order's rule (by id, in the direction of the last sort
 * key) whichever way the index is read.
 */
export function idDirection(fields: readonly IndexField[]): 'asc' | 'desc' {
  return fields.at(-1)?.dir ?? 'asc'
}

/** Appends the ops that move an entity's entries from its meta `before` to `after`. */
export function indexEntryOps(ns: string, id: string, before: EntityMeta | undefined, after: EntityMeta | undefined, indexes: readonly NamedIndex[], ops: KvBatchOp[]): void {
  for (const index of indexes) {
    const was = indexEntryKey(ns, index, id, before)
    const now = indexEntryKey(ns, index, id, after)
    if (was === now) continue
    if (was !== undefined && now !== undefined && shouldStaleIndex()) continue // a planted bug (daemon/failpoints.ts)
    if (was !== undefined) ops.push({ type: 'del', key: was })
    if (now !== undefined) ops.push({ type: 'put', key: now, value: utf8(id) })
  }
}
