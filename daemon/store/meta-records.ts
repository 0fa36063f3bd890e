/**
 * The node's records under the `m` keys (keys.ts) and their codecs: what each holds, how it is
 * encoded (JSON, or a decimal number for the feed position), and what it is while absent.
 */
import { emptyVector, type VersionVector } from '../../crdt/index.ts'
import type { KvBatchOp, KvReader } from '../storage/kv-store.ts'
import { utf8 } from './entity-meta.ts'
import { META_CLIENT_IDS, META_COUNTS, META_FEED_FLOOR, META_FEED_SEQ, META_GC_HORIZON, META_LOG_FLOOR, META_NODE_VV, META_REMOVED } from './keys.ts'

const textDecoder = new TextDecoder()

/** One node record: its key and its codec. */
export interface MetaRecord<T> {
  readonly key: string
  encode(value: T): Uint8Array
  /** The stored value; the record's empty value when the key is absent. */
  decode(bytes: Uint8Array | undefined): T
  /** The batch op that stores `value`. */
  put(value: T): KvBatchOp
}

function record<T>(key: string, encode: (value: T) => Uint8Array, decode: (bytes: Uint8Array) => T, empty: () => T): MetaRecord<T> {
  return {
    key,
    encode,
    decode: (bytes) => (bytes ? decode(bytes) : empty()),
    put: (value) => ({ type: 'put', key, value: encode(value) }),
  }
}

export function jsonRecord<T>(key: string, empty: () => T): MetaRecord<T> {
  return record(
    key,
    (value) => utf8(JSON.stringify(value)),
    (bytes) => JSON.parse(textDecoder.decode(bytes)) as T,
    empty,
  )
}

/** Node version vector: per origin, every change up to this seq is applied here. */
export const nodeVvRecord = jsonRecord<VersionVector>(META_NODE_VV, emptyVector)
/** The latest feed position (a decimal number). */
export const feedSeqRecord = record<number>(
  META_FEED_SEQ,
  (seq) => utf8(String(seq)),
  (bytes) => Number(textDecoder.decode(bytes)),
  () => 0,
)
/** Every Yjs clientID this node has edited with. */
export const clientIdsRecord = jsonRecord<number[]>(META_CLIENT_IDS, () => [])
/** Live entities per namespace. */
export const countsRecord = jsonRecord<Record<string, number>>(META_COUNTS, () => ({}))
/** Per origin, the seq up to which this node's log may miss records (taken by snapshot). */
export const logFloorRecord = jsonRecord<VersionVector>(META_LOG_FLOOR, emptyVector)
/** Per namespace, the merged vectors of every tombstone purged here. */
export const gcHorizonRecord = jsonRecord<Record<string, VersionVector>>(META_GC_HORIZON, () => ({}))
/** Per namespace, the highest feed position a purge removed. */
export const feedFloorRecord = jsonRecord<Record<string, number>>(META_FEED_FLOOR, () => ({}))
/** Per namespace, the feed position taken by its latest removal of entities. */
export const removedRecord = jsonRecord<Record<string, number>>(META_REMOVED, () => ({}))

/** The node records the committer starts from. */
export interface NodeRecords {
  readonly nodeVv: VersionVector
  readonly feedSeq: number
  readonly clientIds: number[]
  readonly counts: Record<string, number>
  readonly logFloor: VersionVector
  readonly horizon: Record<string, VersionVector>
  readonly feedFloor: Record<string, number>
}

/** Reads the node records (their empty values where absent). */
export async function readNodeRecords(kv: KvReader): Promise<NodeRecords> {
  const [vv, feed, ids, counts, floor, horizon, feedFloor] = await kv.getMany([
    nodeVvRecord.key,
    feedSeqRecord.key,
    clientIdsRecord.key,
    countsRecord.key,
    logFloorRecord.key,
    gcHorizonRecord.key,
    feedFloorRecord.key,
  ])
  return {
    nodeVv: nodeVvRecord.decode(vv),
    feedSeq: feedSeqRecord.decode(feed),
    clientIds: clientIdsRecord.decode(ids),
    counts: countsRecord.decode(counts),
    logFloor: logFloorRecord.decode(floor),
    horizon: gcHorizonRecord.decode(horizon),
    feedFloor: feedFloorRecord.decode(feedFloor),
  }
}

/** A record's own value for `key` (a namespace may be named like an Object.prototype member). */
export function own<T>(record: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined
}
