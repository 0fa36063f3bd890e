/**
 * LevelDB key layout. Parts are joined with U+0000, which no namespace, id or node id may
 * contain, so every prefix scan is exact. Sequence numbers are fixed-width hex so that key order
 * is numeric order.
 *
 * | key                                 | value                                   |
 * |-------------------------------------|-----------------------------------------|
 * | `e\0<ns>\0<id>`                     | entity meta (JSON: vv, heads, value...) |
 * | `y\0<ns>\0<id>`                     | entity Yjs state (V1 update): the base  |
 * | `d\0<ns>\0<id>\0<feedSeq:16 hex>`    | Yjs update committed after the base     |
 * | `l\0<origin>\0<seq:16 hex>`         | change record (per-origin change log)   |
 * | `f\0<ns>\0<feedSeq:16 hex>`         | change-feed entry (latest per entity)   |
 * | `c\0<ns>\0<id>`                     | (empty) entity has unresolved conflicts |
 * | `t\0<ns>\0<id>`                     | tombstone: JSON {deletedAt, vv}         |
 * | `m\0<name>`                         | node metadata (node vv, feed seq, ...)  |
 * | `i\0<ns>\0<index>\0<values><id>`     | secondary index entry: the entity's id  |
 * | `h\0<ns>\0<id>\0<rank:16 hex>\0<origin>\0<seq:16 hex>` | history entry: JSON {c: context, f?: 1} |
 * | `g\0<ns>\0<id>`                     | history purged: JSON {before: vv}      |
 *
 * An index entry's `<values><id>` is the order-preserving encoding of the indexed values and the
 * id (daemon/query/collation.ts), so that key order is the index's order (docs/queries.md).
 */
const SEP = '\u0000'
const AFTER_SEP = '\u0001'

/**
 * Per namespace, the feed position taken by its latest removal of entities (a wipe): JSON {ns:
 * feedSeq}. Whatever removes entities takes a new feed position and records it here, so that a
 * backup that read the feed up to an earlier position knows to read the namespace again in full.
 */
export const META_REMOVED = `m${SEP}removed`
export const META_NODE_VV = `m${SEP}node-vv`
export const META_FEED_SEQ = `m${SEP}feed-seq`
export const META_CLIENT_IDS = `m${SEP}client-ids`
export const META_COUNTS = `m${SEP}counts`
export const META_LOG_FLOOR = `m${SEP}log-floor`
/** Per namespace, the merged vectors of every tombstone purged here (JSON {ns: vv}). */
export const META_GC_HORIZON = `m${SEP}gc-horizon`
/** Per namespace, the highest feed position a purge removed (JSON {ns: feedSeq}). */
export const META_FEED_FLOOR = `m${SEP}feed-floor`
/** The history index's format (absent: a data dir of an earlier version; the index is built on open). */
export const META_HISTORY = `m${SEP}history`
/** Per namespace, its secondary indexes: definition, origin and build state (JSON). */
export const META_INDEXES = `m${SEP}indexes`

export function entityMetaKey(ns: string, id: string): string {
  return `e${SEP}${ns}${SEP}${id}`
}

export function entityStateKey(ns: string, id: string): string {
  return `y${SEP}${ns}${SEP}${id}`
}

/** Range of entity meta keys in `ns` whose id starts with `prefix`. */
export function entityMetaRange(ns: string, prefix = ''): { gte: string; lt: string } {
  const base = `e${SEP}${ns}${SEP}${prefix}`
  return { gte: base, lt: prefix === '' ? `e${SEP}${ns}${AFTER_SEP}` : prefixEnd(base) }
}

/**
 * A Yjs update stored after an entity's base state by the commit at feed position `feedSeq`
 * (state-parts.ts): the entity's state is the base with its deltas applied in feed order.
 */
export function entityDeltaKey(ns: string, id: string, feedSeq: number): string {
  return `d${SEP}${ns}${SEP}${id}${SEP}${hex16(feedSeq)}`
}

/** Range of the delta keys of every entity of `ns`, or of all namespaces. */
export function entityDeltaRange(ns?: string): { gte: string; lt: string } {
  return ns === undefined ? { gte: `d${SEP}`, lt: `d${AFTER_SEP}` } : { gte: `d${SEP}${ns}${SEP}`, lt: `d${SEP}${ns}${AFTER_SEP}` }
}

/** Range of every entity state key of `ns`. */
export function entityStateRange(ns: string): { gte: string; lt: string } {
  return { gte: `y${SEP}${ns}${SEP}`, lt: `y${SEP}${ns}${AFTER_SEP}` }
}

/** Splits an entity meta key into namespace and id. */
export function parseEntityMetaKey(key: string): { ns: string; id: string } {
  const first = key.indexOf(SEP)
  const second = key.indexOf(SEP, first + 1)
  return { ns: key.slice(first + 1, second), id: key.slice(second + 1) }
}

export function conflictKey(ns: string, id: string): string {
  return `c${SEP}${ns}${SEP}${id}`
}

/** Conflict-index keys of one namespace, or of all. */
export function conflictRange(ns?: string): { gte: string; lt: string } {
  return ns === undefined ? { gte: `c${SEP}`, lt: `c${AFTER_SEP}` } : { gte: `c${SEP}${ns}${SEP}`, lt: `c${SEP}${ns}${AFTER_SEP}` }
}

export function tombstoneKey(ns: string, id: string): string {
  return `t${SEP}${ns}${SEP}${id}`
}

/** Tombstone-index keys of one namespace, or of all. */
export function tombstoneRange(ns?: string): { gte: string; lt: string } {
  return ns === undefined ? { gte: `t${SEP}`, lt: `t${AFTER_SEP}` } : { gte: `t${SEP}${ns}${SEP}`, lt: `t${SEP}${ns}${AFTER_SEP}` }
}

export function changeLogKey(origin: string, seq: number): string {
  return `l${SEP}${origin}${SEP}${hex16(seq)}`
}

/** Log keys of `origin` with seq in (afterSeq, ∞). */
export function changeLogRange(origin: string, afterSeq: number): { gt: string; lt: string } {
  return { gt: changeLogKey(origin, afterSeq), lt: `l${SEP}${origin}${AFTER_SEP}` }
}

export function feedKey(ns: string, feedSeq: number): string {
  return `f${SEP}${ns}${SEP}${hex16(feedSeq)}`
}

/** Feed keys of `ns` with feed seq in (afterSeq, ∞). */
export function feedRange(ns: string, afterSeq: number): { gt: string; lt: string } {
  return { gt: feedKey(ns, afterSeq), lt: `f${SEP}${ns}${AFTER_SEP}` }
}

/** The feed seq encoded at the end of a feed key. */
export function feedSeqOfKey(key: string): number {
  return Number.parseInt(key.slice(key.lastIndexOf(SEP) + 1), 16)
}

/** The key prefix of every entry of one index. */
export function indexPrefix(ns: string, name: string): string {
  return `i${SEP}${ns}${SEP}${name}${SEP}`
}

/** Entry keys of every index of `ns`. */
export function indexRange(ns: string): { gte: string; lt: string } {
  return { gte: `i${SEP}${ns}${SEP}`, lt: `i${SEP}${ns}${AFTER_SEP}` }
}

/**
 * A history entry of an entity (docs/history.md): the change `(origin, seq)`, ordered by `rank`
 * (the sum of the change's version vector), so that key order is a causal order.
 */
export function historyKey(ns: string, id: string, rank: number, origin: string, seq: number): string {
  return `h${SEP}${ns}${SEP}${id}${SEP}${hex16(rank)}${SEP}${origin}${SEP}${hex16(seq)}`
}

/** Every history entry of one entity. */
export function historyRange(ns: string, id: string): { gt: string; lt: string } {
  return { gt: `h${SEP}${ns}${SEP}${id}${SEP}`, lt: `h${SEP}${ns}${SEP}${id}${AFTER_SEP}` }
}

/** Every history entry of every entity. */
export function allHistoryRange(): { gte: string; lt: string } {
  return { gte: `h${SEP}`, lt: `h${AFTER_SEP}` }
}

/** The rank, origin and seq of a history key. */
export function parseHistoryKey(key: string): { ns: string; id: string; rank: number; origin: string; seq: number } {
  const parts = key.split(SEP)
  return {
    ns: parts[1] as string,
    id: parts[2] as string,
    rank: Number.parseInt(parts[3] as string, 16),
    origin: parts[4] as string,
    seq: Number.parseInt(parts[5] as string, 16),
  }
}

/** What a tombstone purge removed of an entity's history (docs/history.md). */
export function historyGoneKey(ns: string, id: string): string {
  return `g${SEP}${ns}${SEP}${id}`
}

/** The origin and seq encoded in a change log key. */
export function parseChangeLogKey(key: string): { origin: string; seq: number } {
  const parts = key.split(SEP)
  return { origin: parts[1] as string, seq: Number.parseInt(parts[2] as string, 16) }
}

/** Every change log key. */
export function allChangeLogRange(): { gte: string; lt: string } {
  return { gte: `l${SEP}`, lt: `l${AFTER_SEP}` }
}

function hex16(n: number): string {
  return n.toString(16).padStart(16, '0')
}

/** Smallest string greater than every string starting with `prefix`. */
function prefixEnd(prefix: string): string {
  // Ids are printable, so bumping the last code unit of the prefix bounds the range exactly.
  const last = prefix.charCodeAt(prefix.length - 1)
  return prefix.slice(0, -1) + String.fromCharCode(last + 1)
}
