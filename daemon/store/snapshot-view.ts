/**
 * A point-in-time view of the store (one LevelDB snapshot) as backups read it: every entity raw
 * (stored meta JSON and Yjs state, no decoding; a large entity's base state merged with the updates
 * stored after it, state-parts.ts) in batches, one entity by key, the change feed
 * and the per-origin change log after a position, and the node metadata of that same moment.
 */
import { decodeChange, type ChangeRecord, type VersionVector } from '../../crdt/index.ts'
import { compareKeys } from '../storage/key-order.ts'
import type { KvSnapshot } from '../storage/kv-store.ts'
import { decodeMeta } from './entity-meta.ts'
import {
  changeLogRange,
  entityMetaKey,
  entityStateKey,
  feedRange,
  feedSeqOfKey,
  tombstoneRange,
} from './keys.ts'
import { countsRecord, feedSeqRecord, logFloorRecord, nodeVvRecord, removedRecord } from './meta-records.ts'
import { readEntities } from './read-entities.ts'
import { joinState, readStates } from './state-parts.ts'
import type { StoredEntity, StoreSnapshot } from './types.ts'

const SEP = '\u0000'
const textDecoder = new TextDecoder()

/** An entity as stored, undecoded. */
export interface RawEntity {
  /** `ns \0 id` (the store key without its one-letter prefix). */
  readonly key: string
  /** The stored entity meta (JSON, see entity-meta.ts). */
  readonly meta: Uint8Array
  /** The stored Yjs state (V1 update, base and later updates merged; empty when the entity has none). */
  readonly state: Uint8Array
}

/** Splits a {@link RawEntity.key}. */
export function splitEntityKey(key: string): { ns: string; id: string } {
  const at = key.indexOf(SEP)
  return { ns: key.slice(0, at), id: key.slice(at + 1) }
}

/** How much one batch of {@link SnapshotView.rawEntities} reads from each of the two key ranges. */
const RAW_BATCH = { entries: 2000, bytes: 2 * 1024 * 1024 }

export class SnapshotView implements StoreSnapshot {
  /** The node vector: the entities hold exactly the changes it covers. */
  readonly vv: VersionVector
  /** The last change-feed position given out. */
  readonly feedSeq: number
  /** Per origin, the seq up to which the change log may miss records (they came by snapshot). */
  readonly logFloor: VersionVector
  /** Per namespace, the feed position of its latest removal of entities (a wipe). */
  readonly removedAt: Readonly<Record<string, number>>
  /** Live (not deleted) entities per namespace. */
  readonly liveCounts: Readonly<Record<string, number>>
  readonly #kv: KvSnapshot

  private constructor(kv: KvSnapshot, meta: { vv: VersionVector; feedSeq: number; logFloor: VersionVector; removedAt: Record<string, number>; liveCounts: Record<string, number> }) {
    this.#kv = kv
    this.vv = meta.vv
    this.feedSeq = meta.feedSeq
    this.logFloor = meta.logFloor
    this.removedAt = meta.removedAt
    this.liveCounts = meta.liveCounts
  }

  /** Reads the node metadata of `kv`; closes it on failure. */
  static async open(kv: KvSnapshot): Promise<SnapshotView> {
    try {
      const [vv, feed, floor, removed, counts] = await kv.getMany([nodeVvRecord.key, feedSeqRecord.key, logFloorRecord.key, removedRecord.key, countsRecord.key])
      return new SnapshotView(kv, {
        vv: nodeVvRecord.decode(vv),
        feedSeq: feedSeqRecord.decode(feed),
        logFloor: logFloorRecord.decode(floor),
        removedAt: removedRecord.decode(removed),
        liveCounts: countsRecord.decode(counts),
      })
    } catch (error) {
      await kv.close().catch(() => undefined)
      throw error
    }
  }

  /** Every entity (deleted ones too) with its decoded meta, in key order. */
  entities(options: { ns?: string } = {}): AsyncGenerator<StoredEntity> {
    return readEntities(this.#kv, options.ns)
  }

  /**
   * Every entity of the store (or of one namespace) raw, in key order, in batches: the meta and
   * the state ranges are read side by side and joined by key. `from`: the first entity key
   * (`ns \0 id`, see {@link RawEntity.key}) to read, when not the first of the range.
   */
  async *rawEntities(options: { ns?: string; from?: string } = {}): AsyncGenerator<RawEntity[]> {
    const range = (prefix: string): { gte: string; lt: string } => {
      const whole = options.ns === undefined ? { gte: `${prefix}${SEP}`, lt: `${prefix}\u0001` } : { gte: `${prefix}${SEP}${options.ns}${SEP}`, lt: `${prefix}${SEP}${options.ns}\u0001` }
      const from = options.from === undefined ? undefined : `${prefix}${SEP}${options.from}`
      return from !== undefined && compareKeys(from, whole.gte) > 0 ? { gte: from, lt: whole.lt } : whole
    }
    const metas = this.#kv.iterateBatches(range('e'), RAW_BATCH)[Symbol.asyncIterator]()
    const states = this.#kv.iterateBatches(range('y'), RAW_BATCH)[Symbol.asyncIterator]()
    let m: readonly [string, Uint8Array][] = []
    let s: readonly [string, Uint8Array][] = []
    let mi = 0
    let si = 0
    let mDone = false
    let sDone = false
    try {
      for (;;) {
        // Refill whichever side ran out, both at once when both did (two reads in flight).
        const needM = !mDone && mi >= m.length
        const needS = !sDone && si >= s.length
        if (needM || needS) {
          const [nm, ns] = await Promise.all([needM ? metas.next() : undefined, needS ? states.next() : undefined])
          if (nm) {
            if (nm.done) mDone = true
            else [m, mi] = [nm.value, 0]
          }
          if (ns) {
            if (ns.done) sDone = true
            else [s, si] = [ns.value, 0]
          }
        }
        if (mi >= m.length) return // no more metas: a state without a meta is not an entity
        const out: RawEntity[] = []
        while (mi < m.length && (sDone || si < s.length)) {
          const [mk, meta] = m[mi] as [string, Uint8Array]
          const key = mk.slice(2)
          const pair = s[si]
          const order = pair === undefined ? -1 : compareSuffix(key, pair[0])
          if (order === 0) {
            out.push({ key, meta, state: (pair as [string, Uint8Array])[1] })
            mi++
            si++
          } else if (order < 0) {
            // A meta without a state (never written by the store; read as an empty document).
            out.push({ key, meta, state: new Uint8Array(0) })
            mi++
          } else si++ // a state without a meta: not an entity
        }
        if (out.length > 0) yield await this.#withDeltas(out)
      }
    } finally {
      await Promise.allSettled([metas.return?.(), states.return?.()])
    }
  }

  /**
   * The batch with each state joined to the deltas stored after it (state-parts.ts), read with
   * one range scan over the batch's keys: the metas need no decoding, and most entities have none.
   */
  async #withDeltas(batch: RawEntity[]): Promise<RawEntity[]> {
    const first = batch[0] as RawEntity
    const last = batch.at(-1) as RawEntity
    const deltas = new Map<string, Uint8Array[]>()
    for await (const [key, value] of this.#kv.iterate({ gte: `d${SEP}${first.key}${SEP}`, lt: `d${SEP}${last.key}\u0001` })) {
      const entity = key.slice(2, key.lastIndexOf(SEP))
      const list = deltas.get(entity)
      if (list) list.push(value)
      else deltas.set(entity, [value])
    }
    if (deltas.size === 0) return batch
    return batch.map((e) => {
      const list = deltas.get(e.key)
      return list ? { ...e, state: joinState(e.state, list) ?? new Uint8Array(0) } : e
    })
  }

  /** The entities of `keys` (`ns \0 id`) raw, undefined where there is none. */
  async rawEntitiesOf(keys: readonly string[]): Promise<(RawEntity | undefined)[]> {
    const out: (RawEntity | undefined)[] = []
    for (let i = 0; i < keys.length; i += 1000) {
      const part = keys.slice(i, i + 1000)
      const names = part.map(splitEntityKey)
      const values = await this.#kv.getMany(names.flatMap(({ ns, id }) => [entityMetaKey(ns, id), entityStateKey(ns, id)]))
      const { states } = await readStates(
        this.#kv,
        names.map(({ ns, id }, j) => {
          const meta = values[2 * j]
          return { ns, id, meta: meta ? decodeMeta(meta) : undefined, base: values[2 * j + 1] }
        }),
      )
      part.forEach((key, j) => {
        const meta = values[2 * j]
        out.push(meta === undefined ? undefined : { key, meta, state: states[j] ?? new Uint8Array(0) })
      })
    }
    return out
  }

  /** The namespaces holding at least one entity, in key order (one seek per namespace). */
  async namespaces(): Promise<string[]> {
    const out: string[] = []
    let from = `e${SEP}`
    for (;;) {
      let found: string | undefined
      for await (const [key] of this.#kv.iterate({ gte: from, lt: 'e\u0001', limit: 1 })) found = key
      if (found === undefined) return out
      const ns = found.slice(2, found.indexOf(SEP, 2))
      out.push(ns)
      from = `e${SEP}${ns}\u0001`
    }
  }

  /** Deleted entities (tombstones not yet purged) per namespace. */
  async tombstoneCounts(): Promise<Record<string, number>> {
    const counts: Record<string, number> = {}
    for await (const batch of this.#kv.iterateBatches(tombstoneRange())) {
      for (const [key] of batch) {
        const ns = key.slice(2, key.indexOf(SEP, 2))
        counts[ns] = (counts[ns] ?? 0) + 1
      }
    }
    return counts
  }

  /** Ids of the entities of `ns` changed after feed position `after` (the latest change of each), in feed order. */
  async *feedAfter(ns: string, after: number): AsyncGenerator<{ id: string; feedSeq: number }> {
    for await (const batch of this.#kv.iterateBatches(feedRange(ns, after))) {
      for (const [key, value] of batch) yield { id: (JSON.parse(textDecoder.decode(value)) as { id: string }).id, feedSeq: feedSeqOfKey(key) }
    }
  }

  /** Change records of `origin` with seq in (after, upTo], in seq order. */
  async *changesAfter(origin: string, after: number, upTo: number): AsyncGenerator<ChangeRecord> {
    if (upTo <= after) return
    for await (const batch of this.#kv.iterateBatches(changeLogRange(origin, after))) {
      for (const [, value] of batch) {
        const change = decodeChange(value)
        if (change.seq > upTo) return
        yield change
      }
    }
  }

  close(): Promise<void> {
    return this.#kv.close()
  }
}

/** Compares an entity key (`ns \0 id`) with a store key of another range (`y \0 ns \0 id`) in key order. */
function compareSuffix(key: string, other: string): number {
  if (other.length === key.length + 2 && other.startsWith(key, 2)) return 0 // the usual case, without a copy
  return compareKeys(key, other.slice(2))
}
