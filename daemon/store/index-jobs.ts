/**
 * The committer's index jobs (docs/queries.md, Indexes): creating, dropping and declaring indexes,
 * and one step of a background build. Each reads what it needs and returns one batch with the
 * catalog after it; the committer writes it alone, between groups, so a build step never races an
 * entity change (every change after a step moves the entries that step wrote).
 */
import { IndexError } from '../errors.ts'
import type { IndexField } from '../query/planner.ts'
import type { KvBatchOp, KvReader } from '../storage/kv-store.ts'
import { decodeMeta, utf8 } from './entity-meta.ts'
import { indexCatalogRecord, indexEntryKey, indexesOf, MAX_INDEXES_PER_NAMESPACE, sameFields, type IndexCatalog, type NamedIndex, type StoredIndex } from './indexes.ts'
import { entityMetaKey, entityMetaRange, indexPrefix, parseEntityMetaKey } from './keys.ts'
import { own } from './meta-records.ts'

/** Entities one build step indexes. */
export const BUILD_STEP_ENTITIES = 500

export type IndexAction =
  | { readonly op: 'create'; readonly ns: string; readonly name: string; readonly fields: readonly IndexField[] }
  | { readonly op: 'drop'; readonly ns: string; readonly name: string }
  | { readonly op: 'build'; readonly ns: string; readonly name: string }
  /** The config's indexes: created, replaced when their fields changed; config indexes no longer declared are dropped. */
  | { readonly op: 'declare'; readonly declared: Readonly<Record<string, Readonly<Record<string, readonly IndexField[]>>>> }

/** What an index job did. */
export interface IndexOutcome {
  /** The index created or found (create), or undefined. */
  readonly index?: NamedIndex
  /** Create: false when an identical index already existed. */
  readonly created?: boolean
}

/** A job's batch (undefined: nothing to write) and the catalog after it. */
export interface IndexPlan {
  readonly ops: KvBatchOp[] | undefined
  readonly catalog: IndexCatalog
  readonly outcome: IndexOutcome
}

function withIndex(catalog: IndexCatalog, ns: string, name: string, index: StoredIndex | undefined): IndexCatalog {
  const forNs = { ...(own(catalog, ns) ?? {}) }
  if (index === undefined) delete forNs[name]
  else forNs[name] = index
  const out = { ...catalog, [ns]: forNs }
  if (Object.keys(forNs).length === 0) delete out[ns]
  return out
}

/** Deletes of every entry of one index. */
async function dropEntries(kv: KvReader, ns: string, name: string, ops: KvBatchOp[]): Promise<void> {
  const prefix = indexPrefix(ns, name)
  for await (const [key] of kv.iterate({ gte: prefix, lt: prefix + '\uffff' })) ops.push({ type: 'del', key })
}

const fresh = (fields: readonly IndexField[], source: StoredIndex['source']): StoredIndex => ({ fields, source, state: 'building', built: 0 })

export async function planIndexJob(kv: KvReader, catalog: IndexCatalog, action: IndexAction): Promise<IndexPlan> {
  const ops: KvBatchOp[] = []
  let next = catalog
  let outcome: IndexOutcome = {}
  switch (action.op) {
    case 'create': {
      const existing = own(own(catalog, action.ns) ?? {}, action.name)
      if (existing) {
        if (!sameFields(existing.fields, action.fields)) throw new IndexError('INDEX_CONFLICT', `index ${action.ns}/${action.name} exists with other fields; drop it first`)
        return { ops: undefined, catalog, outcome: { index: { name: action.name, ...existing }, created: false } }
      }
      if (indexesOf(catalog, action.ns).length >= MAX_INDEXES_PER_NAMESPACE) throw new IndexError('INDEX_CONFLICT', `namespace ${action.ns} has ${MAX_INDEXES_PER_NAMESPACE} indexes, the most it takes`)
      const index = fresh(action.fields, 'api')
      next = withIndex(catalog, action.ns, action.name, index)
      outcome = { index: { name: action.name, ...index }, created: true }
      break
    }
    case 'drop': {
      const existing = own(own(catalog, action.ns) ?? {}, action.name)
      if (!existing) throw new IndexError('INDEX_NOT_FOUND', `no index ${action.name} in namespace ${action.ns}`)
      if (existing.source === 'config') throw new IndexError('INDEX_CONFLICT', `index ${action.ns}/${action.name} is declared in the config (namespaces.${action.ns}.indexes); remove it there`)
      await dropEntries(kv, action.ns, action.name, ops)
      next = withIndex(catalog, action.ns, action.name, undefined)
      break
    }
    case 'build': {
      const existing = own(own(catalog, action.ns) ?? {}, action.name)
      if (!existing || existing.state !== 'building') return { ops: undefined, catalog, outcome }
      const index = { name: action.name, ...existing }
      const range = entityMetaRange(action.ns)
      const from = existing.after !== undefined ? { gt: entityMetaKey(action.ns, existing.after), lt: range.lt } : range
      let seen = 0
      let built = existing.built
      let last: string | undefined
      for await (const [key, value] of kv.iterate({ ...from, limit: BUILD_STEP_ENTITIES })) {
        seen++
        const { id } = parseEntityMetaKey(key)
        last = id
        const entry = indexEntryKey(action.ns, index, id, decodeMeta(value))
        if (entry === undefined) continue
        ops.push({ type: 'put', key: entry, value: utf8(id) })
        built++
      }
      const done = seen < BUILD_STEP_ENTITIES
      const { after: _after, ...rest } = existing
      const after = done ? undefined : (last ?? existing.after)
      next = withIndex(catalog, action.ns, action.name, { ...rest, state: done ? 'ready' : 'building', built, ...(after !== undefined && { after }) })
      break
    }
    case 'declare': {
      for (const [ns, forNs] of Object.entries(catalog)) {
        for (const [name, index] of Object.entries(forNs)) {
          const wanted = own(own(action.declared, ns) ?? {}, name)
          if (index.source === 'config' && wanted === undefined) {
            await dropEntries(kv, ns, name, ops)
            next = withIndex(next, ns, name, undefined)
          }
        }
      }
      for (const [ns, forNs] of Object.entries(action.declared)) {
        for (const [name, fields] of Object.entries(forNs)) {
          const existing = own(own(next, ns) ?? {}, name)
          if (existing && sameFields(existing.fields, fields)) {
            if (existing.source !== 'config') next = withIndex(next, ns, name, { ...existing, source: 'config' })
            continue
          }
          if (existing) await dropEntries(kv, ns, name, ops)
          next = withIndex(next, ns, name, fresh(fields, 'config'))
        }
      }
      if (JSON.stringify(next) === JSON.stringify(catalog)) return { ops: undefined, catalog, outcome }
      break
    }
  }
  ops.push(indexCatalogRecord.put(next))
  return { ops, catalog: next, outcome }
}
