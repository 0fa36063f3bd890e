import type { Dot, FieldHeads, Head, JsonRecord, VersionVector } from '../../crdt/index.ts'

/**
 * What the store keeps next to an entity's Yjs state: its causal metadata and the materialized
 * record, so that reads and lists never decode a Y.Doc.
 */
export interface EntityMeta {
  /** Entity version vector: per origin, the highest seq of its changes applied here. */
  readonly vv: VersionVector
  /** Causally-maximal changes (several after concurrent writes). */
  readonly heads: readonly Head[]
  /** Per field, its maximal writes (several while concurrent writes are unresolved). */
  readonly fieldHeads: FieldHeads
  /** True when every head is a delete (tombstone). */
  readonly deleted: boolean
  /** Wall-clock ms of the latest change applied here. */
  readonly updatedAt: number
  /** Local change-feed position of the latest change (its feed key). */
  readonly feedSeq: number
  /** The record as the Yjs state holds it (kept while deleted, hidden from reads). */
  readonly value: JsonRecord
  /** Names of the text roots. */
  readonly texts: readonly string[]
  /** While deleted: the latest time of its deletes (origin clocks); starts the GC grace period. */
  readonly deletedAt?: number
  /** The fresh change that started the current incarnation (absent: the first one). */
  readonly incarnation?: Dot
  /**
   * Where the Yjs state is stored when the entity is large: base and deltas (state-parts.ts).
   * Absent for a small entity, and where the state is one whole value (a bulk load, older versions).
   */
  readonly stateParts?: StateParts
}

/**
 * Where a large entity's Yjs state is stored (state-parts.ts): the size of its base state, and the
 * deltas stored after it, each numbered by the feed position of the commit that wrote it.
 */
export interface StateParts {
  /** Bytes of the base state. */
  readonly base: number
  /** The deltas, oldest first (absent: none). */
  readonly deltas?: readonly number[]
  /** Bytes of the deltas. */
  readonly bytes?: number
}

const decoder = new TextDecoder()

/**
 * The UTF-8 bytes of a stored text (the JSON of a meta, a feed entry, a tombstone, the node's
 * records). `Buffer.from` takes a short string's bytes from Node's shared 8 KiB pool, where
 * `TextEncoder.encode` gives each its own backing store, which cost more than the encoding itself
 * on the write path (two or three per entity written).
 */
export function utf8(text: string): Uint8Array {
  return Buffer.from(text, 'utf8')
}

export function encodeMeta(meta: EntityMeta): Uint8Array {
  return utf8(JSON.stringify(meta))
}

export function decodeMeta(bytes: Uint8Array): EntityMeta {
  return JSON.parse(decoder.decode(bytes)) as EntityMeta
}
