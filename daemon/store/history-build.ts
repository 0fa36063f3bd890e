/**
 * Building the history index (history-index.ts) of a data dir written by an earlier version,
 * which has none (no `m\0history` record): once, on open, from the change log, before the store
 * takes any write (docs/history.md, "Data dirs of earlier versions").
 */
import type { Logger } from 'pino'
import { decodeChange, emptyVector, includesDot, merge, type ChangeRecord, type VersionVector } from '../../crdt/index.ts'
import type { KvBatchOp, KvStore } from '../storage/kv-store.ts'
import { decodeMeta } from './entity-meta.ts'
import { changeVector, decodeHistoryValue, historyBuiltOp, historyEntryOp, historyGoneOp } from './history-index.ts'
import { allChangeLogRange, entityMetaKey, historyRange, META_HISTORY, parseHistoryKey } from './keys.ts'
import { gcHorizonRecord, own } from './meta-records.ts'

const BATCH = 1000

/**
 * Builds the index unless it is there: an entry for every change record, except the records of
 * what tombstone purges removed, which are recorded as gone instead, as a purge does. A record
 * is taken for purged when its namespace's purge horizon covers it and it is not part of its
 * entity's present history: the entity is not here, or the record is not reached from the
 * entity's vector through the contexts of its changes (a purged id written again starts a history
 * that names nothing of the purged one). A crash halfway leaves the format record unwritten and
 * the next open builds again (every write here is idempotent). Resolves with the entries written.
 */
export async function buildHistoryIndex(kv: KvStore, log: Logger): Promise<number> {
  if ((await kv.get(META_HISTORY)) !== undefined) return 0
  const horizon = gcHorizonRecord.decode(await kv.get(gcHorizonRecord.key))
  const covered = (c: { readonly ns: string; readonly origin: string; readonly seq: number }): boolean => includesDot(own(horizon, c.ns) ?? emptyVector(), c.origin, c.seq)
  /** Purged entities no longer here: the vectors of their records. */
  const gone = new Map<string, { ns: string; id: string; before: VersionVector }>()
  /** Entities here with records the horizon covers: sorted out once all their entries are written. */
  const suspects = new Map<string, { ns: string; id: string; vv: VersionVector }>()
  let indexed = 0
  let batch: ChangeRecord[] = []
  const flush = async (): Promise<void> => {
    const keys = [...new Set(batch.map((c) => entityMetaKey(c.ns, c.id)))]
    const values = await kv.getMany(keys)
    const metas = new Map(keys.map((key, i) => [key, values[i]]))
    const ops: KvBatchOp[] = []
    for (const change of batch) {
      const key = entityMetaKey(change.ns, change.id)
      const bytes = metas.get(key)
      if (bytes === undefined && covered(change)) {
        const earlier = gone.get(key)
        gone.set(key, { ns: change.ns, id: change.id, before: merge(earlier?.before ?? emptyVector(), changeVector(change)) })
        continue
      }
      if (bytes !== undefined && covered(change) && !suspects.has(key)) suspects.set(key, { ns: change.ns, id: change.id, vv: decodeMeta(bytes).vv })
      ops.push(historyEntryOp(change))
      indexed++
    }
    if (ops.length > 0) await kv.batch(ops, { sync: false })
    batch = []
  }
  for await (const [, value] of kv.iterate(allChangeLogRange())) {
    batch.push(decodeChange(value))
    if (batch.length >= BATCH) await flush()
  }
  await flush()
  for (const { ns, id, vv } of suspects.values()) {
    const { ops, removed } = await purgedLifeOps(kv, ns, id, vv, covered)
    indexed -= removed
    if (ops.length > 0) await kv.batch(ops, { sync: false })
  }
  const ops: KvBatchOp[] = []
  for (const g of gone.values()) ops.push(await historyGoneOp(kv, g.ns, g.id, g.before))
  ops.push(historyBuiltOp())
  await kv.batch(ops, { sync: true })
  if (indexed > 0 || gone.size > 0) log.info({ indexed, purgedEntities: gone.size }, 'built the history index from the change log (a data dir of an earlier version)')
  return indexed
}

/**
 * The ops that remove the entries of an entity's purged earlier life, with its gone record (none
 * when it has no such life), and how many entries they remove: the entries the horizon covers that its present history does
 * not reach. The present history is what the entity's vector names, and what the context of each
 * change reached names, transitively; where a named change has no record (it came in a snapshot),
 * every earlier record of its origin counts as reached: nothing is called purged that may not be.
 */
async function purgedLifeOps(
  kv: KvStore,
  ns: string,
  id: string,
  vv: VersionVector,
  covered: (c: { ns: string; origin: string; seq: number }) => boolean,
): Promise<{ ops: KvBatchOp[]; removed: number }> {
  const entries = new Map<string, { key: string; origin: string; seq: number; context: VersionVector }>()
  for await (const [key, value] of kv.iterate(historyRange(ns, id))) {
    const { origin, seq } = parseHistoryKey(key)
    entries.set(`${origin}:${seq}`, { key, origin, seq, context: decodeHistoryValue(value).c })
  }
  const reached = new Set<string>()
  const pending: [string, number][] = Object.entries(vv)
  while (pending.length > 0) {
    const [origin, seq] = pending.pop() as [string, number]
    const dot = `${origin}:${seq}`
    if (reached.has(dot)) continue
    reached.add(dot)
    const entry = entries.get(dot)
    if (entry) pending.push(...Object.entries(entry.context))
    else for (const e of entries.values()) if (e.origin === origin && e.seq < seq && !reached.has(`${e.origin}:${e.seq}`)) pending.push([e.origin, e.seq])
  }
  const ops: KvBatchOp[] = []
  let before = emptyVector()
  for (const [dot, e] of entries) {
    if (reached.has(dot) || !covered({ ns, origin: e.origin, seq: e.seq })) continue
    ops.push({ type: 'del', key: e.key })
    before = merge(before, changeVector(e))
  }
  const removed = ops.length
  if (removed > 0) ops.push(await historyGoneOp(kv, ns, id, before))
  return { ops, removed }
}
