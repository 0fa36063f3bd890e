/**
 * The history index (docs/history.md): one entry per change record of the per-origin log, under
 * its entity, written in the same batch as the record (group-batch.ts); a tombstone purge removes
 * the entries of what it purges and records that it did (maintenance.ts). A data dir of an earlier
 * version has no index: history-build.ts builds it from the log on open. What the index holds is
 * checked against the log by {@link verifyHistory}.
 */
import {
  decodeChange,
  dominates,
  emptyVector,
  includesDot,
  merge,
  totalCount,
  withCounter,
  type ChangeRecord,
  type VersionVector,
} from '../../crdt/index.ts'
import type { KvBatchOp, KvReader, KvSnapshot } from '../storage/kv-store.ts'
import { utf8 } from './entity-meta.ts'
import {
  allChangeLogRange,
  allHistoryRange,
  changeLogKey,
  historyGoneKey,
  historyKey,
  historyRange,
  META_HISTORY,
  parseHistoryKey,
} from './keys.ts'

/** The index's format as {@link META_HISTORY} records it. */
const HISTORY_FORMAT = 1
const textDecoder = new TextDecoder()

/** A change's version vector: the entity's version it was made on, with its own dot. */
export function changeVector(change: { readonly origin: string; readonly seq: number; readonly context: VersionVector }): VersionVector {
  return withCounter(change.context, change.origin, change.seq)
}

/**
 * Where a change's entry sorts among its entity's: the sum of its version vector. A change made
 * on a version that includes another has a larger vector, so a larger sum: key order is a causal
 * order, and the same on every node (ties between concurrent changes go by origin, then seq).
 */
export function historyRank(change: { readonly origin: string; readonly seq: number; readonly context: VersionVector }): number {
  return totalCount(changeVector(change))
}

/** What an entry holds besides its key: the change's causal context, and whether it started an incarnation. */
export interface HistoryEntryValue {
  readonly c: VersionVector
  readonly f?: 1
}

/** The entry of a change record, to go in the batch that writes the record. */
export function historyEntryOp(change: ChangeRecord): KvBatchOp {
  const value: HistoryEntryValue = change.fresh === true ? { c: change.context, f: 1 } : { c: change.context }
  return { type: 'put', key: historyKey(change.ns, change.id, historyRank(change), change.origin, change.seq), value: utf8(JSON.stringify(value)) }
}

export function decodeHistoryValue(bytes: Uint8Array): HistoryEntryValue {
  return JSON.parse(textDecoder.decode(bytes)) as HistoryEntryValue
}

/** What purges removed of an entity's history: every change its vector `before` includes. */
export interface HistoryGone {
  readonly before: VersionVector
}

export function decodeHistoryGone(bytes: Uint8Array | undefined): HistoryGone | undefined {
  return bytes === undefined ? undefined : (JSON.parse(textDecoder.decode(bytes)) as HistoryGone)
}

/**
 * The ops that remove a purged entity's history: every entry whose change `vv` (the purged
 * tombstone's vector) includes, and the record that they are gone (merged with an earlier one).
 */
export async function historyPurgeOps(kv: KvReader, ns: string, id: string, vv: VersionVector): Promise<KvBatchOp[]> {
  const ops: KvBatchOp[] = []
  for await (const [key] of kv.iterate(historyRange(ns, id))) {
    const { origin, seq } = parseHistoryKey(key)
    if (includesDot(vv, origin, seq)) ops.push({ type: 'del', key })
  }
  ops.push(await historyGoneOp(kv, ns, id, vv))
  return ops
}

/** The op that records the changes `before` includes as purged from the entity's history (with those recorded already). */
export async function historyGoneOp(kv: KvReader, ns: string, id: string, before: VersionVector): Promise<KvBatchOp> {
  const earlier = decodeHistoryGone(await kv.get(historyGoneKey(ns, id)))
  const gone: HistoryGone = { before: merge(earlier?.before ?? emptyVector(), before) }
  return { type: 'put', key: historyGoneKey(ns, id), value: utf8(JSON.stringify(gone)) }
}

/** The op that records the index as built (a new store, or the end of {@link buildHistoryIndex}). */
export function historyBuiltOp(): KvBatchOp {
  return { type: 'put', key: META_HISTORY, value: utf8(String(HISTORY_FORMAT)) }
}

/** What {@link verifyHistory} found. */
export interface HistoryVerifyResult {
  readonly ok: boolean
  /** Change records in the log. */
  readonly records: number
  /** Entries in the index. */
  readonly entries: number
  /** Records whose entry a tombstone purge removed. */
  readonly purged: number
  /** Records (at most 20, as `ns/id origin:seq`) without their entry. */
  readonly missing: string[]
  /** Entries (at most 20) without their record, or that do not match it. */
  readonly extra: string[]
}

const REPORT_MAX = 20

/**
 * Compares the history index with the change log on one snapshot: every record has its entry
 * (or was purged: its entity's gone record includes it), and every entry is its record's.
 */
export async function verifyHistory(snap: KvSnapshot): Promise<HistoryVerifyResult> {
  let records = 0
  let entries = 0
  let purged = 0
  const missing: string[] = []
  const extra: string[] = []
  const name = (ns: string, id: string, origin: string, seq: number): string => `${ns}/${id} ${origin}:${seq}`
  for await (const batch of snap.iterateBatches(allChangeLogRange())) {
    const changes = batch.map(([, value]) => decodeChange(value))
    records += changes.length
    const have = await snap.getMany(changes.map((c) => historyEntryOp(c).key))
    const absent = changes.filter((_, i) => have[i] === undefined)
    if (absent.length === 0) continue
    const gone = await snap.getMany(absent.map((c) => historyGoneKey(c.ns, c.id)))
    absent.forEach((c, i) => {
      const g = decodeHistoryGone(gone[i])
      if (g && includesDot(g.before, c.origin, c.seq)) purged++
      else if (missing.push(name(c.ns, c.id, c.origin, c.seq)) > REPORT_MAX) missing.pop()
    })
  }
  let wrong = 0
  for await (const batch of snap.iterateBatches(allHistoryRange())) {
    entries += batch.length
    const keys = batch.map(([key]) => parseHistoryKey(key))
    const logged = await snap.getMany(keys.map((k) => changeLogKey(k.origin, k.seq)))
    batch.forEach(([key, value], i) => {
      const k = keys[i] as ReturnType<typeof parseHistoryKey>
      const bytes = logged[i]
      const change = bytes ? decodeChange(bytes) : undefined
      const matches = change !== undefined && historyEntryOp(change).key === key && dominates(decodeHistoryValue(value).c, change.context) && dominates(change.context, decodeHistoryValue(value).c)
      if (matches) return
      wrong++
      if (extra.length < REPORT_MAX) extra.push(name(k.ns, k.id, k.origin, k.seq))
    })
  }
  return { ok: missing.length === 0 && wrong === 0, records, entries, purged, missing, extra }
}
