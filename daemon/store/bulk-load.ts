/**
 * Bulk load of entities into an empty store, as another store held them (restore of a backup into
 * a new data dir): each entity's meta and Yjs state as given, plus what the store derives from
 * the meta (its change-feed entry at the meta's feed position, the conflict index, the live
 * counts), written in large batches without decoding any Yjs state; {@link BulkLoader.finish}
 * writes the node metadata and syncs. The result is what the store itself holds for those
 * entities: test/unit/store/bulk-load.test.ts compares every derived key with a live store, so a
 * new derived index of the store fails it until it is added here.
 */
import { isValidEntityId, isValidNamespace, ValidationError, type VersionVector } from '../../crdt/index.ts'
import type { KvBatchOp, KvStore } from '../storage/kv-store.ts'
import { encodeMeta, utf8, type EntityMeta } from './entity-meta.ts'
import { conflictKey, entityMetaKey, entityStateKey, feedKey, tombstoneKey } from './keys.ts'
import { countsRecord, feedSeqRecord, logFloorRecord, nodeVvRecord } from './meta-records.ts'
import { conflictViews } from './views.ts'

const EMPTY = new Uint8Array(0)

/** One entity to load. */
export interface LoadEntity {
  readonly ns: string
  readonly id: string
  readonly meta: EntityMeta
  /** The meta exactly as stored elsewhere (written as is); encoded from `meta` when absent. */
  readonly metaBytes?: Uint8Array
  readonly state: Uint8Array
}

/** What a load wrote. */
export interface LoadResult {
  readonly entities: number
  readonly live: number
  readonly deleted: number
}

export class BulkLoader {
  readonly #kv: KvStore
  readonly #counts: Record<string, number> = {}
  readonly #feedSeqs = new Set<number>()
  /** Entities whose feed position was missing or taken: numbered after the others by finish. */
  readonly #renumber: LoadEntity[] = []
  #maxFeedSeq = 0
  #entities = 0
  #deleted = 0
  #checked = false

  constructor(kv: KvStore) {
    this.#kv = kv
  }

  /** Writes entities (unsynced; {@link finish} syncs). Throws ValidationError on a bad name or meta. */
  async add(entities: readonly LoadEntity[]): Promise<void> {
    if (!this.#checked) {
      for await (const _ of this.#kv.iterate({ gte: 'e\u0000', lt: 'e\u0001', limit: 1 })) throw new ValidationError('STORE_NOT_EMPTY', 'a bulk load needs an empty store')
      this.#checked = true
    }
    const ops: KvBatchOp[] = []
    for (const e of entities) {
      if (!isValidNamespace(e.ns) || !isValidEntityId(e.id)) throw new ValidationError('INVALID_ID', `not an entity name: ${JSON.stringify(e.ns)}/${JSON.stringify(e.id)}`)
      const meta = e.meta
      if (typeof meta !== 'object' || meta === null || typeof meta.vv !== 'object' || !Array.isArray(meta.heads) || typeof meta.deleted !== 'boolean') {
        throw new ValidationError('INVALID_RECORD', `${e.ns}/${e.id}: not an entity meta`)
      }
      const seq = meta.feedSeq
      if (!Number.isSafeInteger(seq) || seq < 1 || this.#feedSeqs.has(seq)) {
        this.#renumber.push(e)
        continue
      }
      this.#feedSeqs.add(seq)
      this.#maxFeedSeq = Math.max(this.#maxFeedSeq, seq)
      this.#entityOps(ops, e, meta.stateParts === undefined ? (e.metaBytes ?? encodeMeta(meta)) : encodeMeta(wholeState(meta)), seq)
    }
    if (ops.length > 0) await this.#kv.batch(ops, { sync: false })
  }

  /**
   * Numbers the entities that had no usable feed position, writes the node metadata (node vector
   * and log floor `vv`, the feed position at least `feedSeq`, the live counts) and syncs.
   */
  async finish(node: { vv: VersionVector; feedSeq?: number }): Promise<LoadResult> {
    const ops: KvBatchOp[] = []
    let next = Math.max(this.#maxFeedSeq, node.feedSeq ?? 0)
    for (const e of this.#renumber) {
      const meta = { ...wholeState(e.meta), feedSeq: ++next }
      this.#entityOps(ops, { ...e, meta }, encodeMeta(meta), meta.feedSeq)
    }
    this.#renumber.length = 0
    ops.push(nodeVvRecord.put(node.vv), logFloorRecord.put(node.vv), feedSeqRecord.put(next), countsRecord.put(this.#counts))
    await this.#kv.batch(ops, { sync: true })
    return { entities: this.#entities, live: this.#entities - this.#deleted, deleted: this.#deleted }
  }

  #entityOps(ops: KvBatchOp[], e: LoadEntity, metaBytes: Uint8Array, feedSeq: number): void {
    const { ns, id, meta } = e
    ops.push({ type: 'put', key: entityMetaKey(ns, id), value: metaBytes })
    ops.push({ type: 'put', key: entityStateKey(ns, id), value: e.state })
    ops.push({ type: 'put', key: feedKey(ns, feedSeq), value: utf8(JSON.stringify({ id, op: meta.deleted ? 'delete' : 'upsert', version: meta.vv })) })
    if (conflictViews(meta).length > 0) ops.push({ type: 'put', key: conflictKey(ns, id), value: EMPTY })
    // The tombstone index the GC sweeps (as the store's own batches write it).
    if (meta.deleted) ops.push({ type: 'put', key: tombstoneKey(ns, id), value: utf8(JSON.stringify({ deletedAt: meta.deletedAt ?? meta.updatedAt, vv: meta.vv })) })
    this.#entities++
    if (meta.deleted) this.#deleted++
    else this.#counts[ns] = (this.#counts[ns] ?? 0) + 1
  }
}

/** The meta without where the source stored its state: a load writes each state whole. */
function wholeState(meta: EntityMeta): EntityMeta {
  const { stateParts: _parts, ...rest } = meta
  return rest
}
