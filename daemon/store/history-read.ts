/**
 * Reading an entity's history (docs/history.md): its entries in the history index, newest first,
 * each with its change record from the per-origin log, the values it wrote, the changes it is
 * concurrent with, and what of the history is gone. Everything is read from one snapshot.
 */
import type * as Y from 'yjs'
import {
  applyEntityUpdate,
  compareDots,
  createEntityDoc,
  decodeChange,
  emptyVector,
  fieldWrites,
  includesDot,
  merge,
  type ChangeRecord,
  type Dot,
  type JsonValue,
  type VersionVector,
} from '../../crdt/index.ts'
import { EntityNotFoundError, RequestError } from '../errors.ts'
import { StorageError } from '../storage/errors.ts'
import type { KvSnapshot } from '../storage/kv-store.ts'
import { decodeMeta, type EntityMeta } from './entity-meta.ts'
import { changeVector, decodeHistoryGone, decodeHistoryValue } from './history-index.ts'
import { changeLogKey, entityMetaKey, entityStateKey, historyGoneKey, historyKey, historyRange, parseHistoryKey } from './keys.ts'
import { readStates } from './state-parts.ts'

/** One change of an entity's history, as the API shows it. */
export interface HistoryItem {
  /** Pass as `after` to read on from here. */
  readonly cursor: string
  readonly origin: string
  readonly seq: number
  /** The origin's wall clock when it made the change (informational: it orders nothing). */
  readonly time: string
  readonly op: 'upsert' | 'delete'
  /** The change started a new incarnation of a deleted entity (docs/tombstone-gc.md). */
  readonly fresh?: true
  /** The change's version vector: the entity's version it was made on, with its own dot. */
  readonly version: VersionVector
  /** The fields it set or removed. */
  readonly fields: readonly string[]
  /** For each of `fields` whose value can be read back: the value written (null: removed). */
  readonly values: Readonly<Record<string, JsonValue | null>>
  /** Fields whose written value cannot be read back any more (docs/history.md). */
  readonly unknownValues?: readonly string[]
  /** The texts it edited. */
  readonly texts: readonly string[]
  /** How many changes of the history are concurrent with this one (absent: none). */
  readonly concurrentCount?: number
  /** The first of them, by origin then seq (at most {@link CONCURRENT_SHOWN}). */
  readonly concurrentWith?: readonly Dot[]
}

/** What of an entity's history is gone: every change `before` includes that is not listed. */
export interface HistoryTruncation {
  readonly before: VersionVector
  /** `purged`: removed by a tombstone purge; `log-floor`: reached this node in a snapshot, without its record. */
  readonly reason: 'purged' | 'log-floor'
}

export interface HistoryPage {
  readonly ns: string
  readonly id: string
  readonly items: HistoryItem[]
  /** The cursor of the next page; absent on the last one. */
  readonly next?: string
  readonly truncated?: HistoryTruncation
}

/** Most concurrent changes named on one item. */
export const CONCURRENT_SHOWN = 20

/** An entry of the index, decoded. */
interface Entry {
  readonly key: string
  readonly rank: number
  readonly origin: string
  readonly seq: number
  readonly context: VersionVector
  readonly fresh: boolean
  /** The change's version vector, one counter per origin of the history ({@link Columns}). */
  readonly counters: Float64Array
  /** The column of its origin. */
  readonly column: number
}

/** The origins an entity's history names, each a column of every entry's {@link Entry.counters}. */
type Columns = ReadonlyMap<string, number>

const CURSOR = /^(\d{1,16})\.([0-9a-z]{1,64})\.(\d{1,16})$/

function cursorOf(e: Entry): string {
  return `${e.rank}.${e.origin}.${e.seq}`
}

/** True when `b` was made on a version that includes `a` (a happened before b, or they are the same change). */
function saw(columns: Columns, b: Entry, a: Dot): boolean {
  const i = columns.get(a.origin)
  return i !== undefined && (b.counters[i] as number) >= a.seq
}

/** The entries with their vectors as counters over the origins the history names. */
function decodeEntries(raw: readonly { key: string; rank: number; origin: string; seq: number; context: VersionVector; fresh: boolean }[]): { entries: Entry[]; columns: Columns } {
  const columns = new Map<string, number>()
  const col = (origin: string): number => {
    let i = columns.get(origin)
    if (i === undefined) columns.set(origin, (i = columns.size))
    return i
  }
  for (const r of raw) {
    col(r.origin)
    for (const origin of Object.keys(r.context)) col(origin)
  }
  const entries = raw.map((r) => {
    const counters = new Float64Array(columns.size)
    for (const [origin, n] of Object.entries(r.context)) counters[col(origin)] = n
    const column = col(r.origin)
    counters[column] = Math.max(counters[column] as number, r.seq)
    return { key: r.key, rank: r.rank, origin: r.origin, seq: r.seq, context: r.context, fresh: r.fresh, counters, column }
  })
  return { entries, columns }
}

/**
 * The page of `ns/id`'s history after `after` (a cursor of an earlier page), newest first: the
 * index's order reversed. ENTITY_NOT_FOUND when the entity has no history here, is not here and
 * nothing of it was purged.
 */
export async function readHistory(snap: KvSnapshot, ns: string, id: string, options: { after?: string | undefined; limit: number }): Promise<HistoryPage> {
  let from: string | undefined
  if (options.after !== undefined) {
    const m = CURSOR.exec(options.after)
    if (!m) throw new RequestError('INVALID_CURSOR', `not a history cursor: ${options.after}`)
    from = historyKey(ns, id, Number(m[1]), m[2] as string, Number(m[3]))
  }
  const [metaBytes, base, goneBytes] = await snap.getMany([entityMetaKey(ns, id), entityStateKey(ns, id), historyGoneKey(ns, id)])
  const meta = metaBytes ? decodeMeta(metaBytes) : undefined
  const gone = decodeHistoryGone(goneBytes)
  const raw: Parameters<typeof decodeEntries>[0][number][] = []
  for await (const batch of snap.iterateBatches(historyRange(ns, id))) {
    for (const [key, value] of batch) {
      const { rank, origin, seq } = parseHistoryKey(key)
      const v = decodeHistoryValue(value)
      raw.push({ key, rank, origin, seq, context: v.c, fresh: v.f === 1 })
    }
  }
  const { entries, columns } = decodeEntries(raw)
  if (entries.length === 0 && meta === undefined && gone === undefined) throw new EntityNotFoundError(ns, id)
  entries.reverse() // newest first
  const start = from === undefined ? 0 : entries.findIndex((e) => e.key < from)
  const page = start < 0 ? [] : entries.slice(start, start + options.limit)
  const more = start >= 0 && start + options.limit < entries.length
  const logged = await snap.getMany(page.map((e) => changeLogKey(e.origin, e.seq)))
  const changes = page.map((e, i) => {
    const bytes = logged[i]
    if (bytes === undefined) throw new StorageError('STORAGE_CORRUPT', `the history of ${ns}/${id} names change ${e.origin}:${e.seq}, which is not in the change log`)
    return decodeChange(bytes)
  })
  const docs = new IncarnationDocs(snap, ns, id, meta, base, entries, columns)
  const items: HistoryItem[] = []
  for (const [i, e] of page.entries()) items.push(itemOf(e, changes[i] as ChangeRecord, entries, await docs.valuesOf(e, changes[i] as ChangeRecord)))
  const truncated = truncation(entries, meta, gone)
  const last = page.at(-1)
  return { ns, id, items, ...(more && last && { next: cursorOf(last) }), ...(truncated && { truncated }) }
}

function itemOf(e: Entry, change: ChangeRecord, all: readonly Entry[], written: { values: Record<string, JsonValue | null>; unknown: string[] }): HistoryItem {
  const concurrent: Dot[] = []
  // Neither vector dominates the other. A change's vector dominates that of every change whose
  // dot it includes (it was made on a version holding that change and all it had seen), so the
  // test is on dots: O(1) a pair (docs/history.md, Order and concurrency).
  const { counters, column, seq } = e
  for (let i = 0; i < all.length; i++) {
    const other = all[i] as Entry
    if (other === e || (other.counters[column] as number) >= seq || (counters[other.column] as number) >= other.seq) continue
    concurrent.push({ origin: other.origin, seq: other.seq })
  }
  concurrent.sort(compareDots)
  return {
    cursor: cursorOf(e),
    origin: change.origin,
    seq: change.seq,
    time: new Date(change.time).toISOString(),
    op: change.op,
    ...(change.fresh === true && { fresh: true as const }),
    version: changeVector(change),
    fields: change.fields,
    values: written.values,
    ...(written.unknown.length > 0 && { unknownValues: written.unknown }),
    texts: change.texts,
    ...(concurrent.length > 0 && { concurrentCount: concurrent.length, concurrentWith: concurrent.slice(0, CONCURRENT_SHOWN) }),
  }
}

/**
 * What of the history is gone. Every change names the latest change of each origin it saw (its
 * context), and the entity's vector names the latest of each origin applied: a named change that
 * has no entry is gone, and so may be everything the vector naming it includes. A purge says so
 * in its gone record; anything else missing reached this node in a snapshot (its log floor).
 */
function truncation(entries: readonly Entry[], meta: EntityMeta | undefined, gone: { before: VersionVector } | undefined): HistoryTruncation | undefined {
  const have = new Set(entries.map((e) => `${e.origin}:${e.seq}`))
  let before = emptyVector()
  let missing = false
  let unexplained = false
  const check = (named: VersionVector): void => {
    for (const [origin, seq] of Object.entries(named)) {
      if (have.has(`${origin}:${seq}`)) continue
      missing = true
      before = merge(before, named)
      if (!gone || !includesDot(gone.before, origin, seq)) unexplained = true
    }
  }
  if (meta) check(meta.vv)
  for (const e of entries) check(e.context)
  if (gone) before = merge(before, gone.before)
  if (!missing && !gone) return undefined
  return { before, reason: unexplained ? 'log-floor' : 'purged' }
}

/**
 * The documents the values of a change are read back from (crdt fieldWrites): the entity's own
 * document for a change of its current incarnation, else one rebuilt from the log records of the
 * change's incarnation (built once per read, when a change of an earlier one is listed).
 */
class IncarnationDocs {
  readonly #snap: KvSnapshot
  readonly #ns: string
  readonly #id: string
  readonly #meta: EntityMeta | undefined
  readonly #base: Uint8Array | undefined
  readonly #entries: readonly Entry[]
  readonly #columns: Columns
  #current: Promise<Y.Doc | undefined> | undefined
  readonly #rebuilt = new Map<string, Promise<Y.Doc>>()

  constructor(snap: KvSnapshot, ns: string, id: string, meta: EntityMeta | undefined, base: Uint8Array | undefined, entries: readonly Entry[], columns: Columns) {
    this.#snap = snap
    this.#ns = ns
    this.#id = id
    this.#meta = meta
    this.#base = base
    this.#entries = entries
    this.#columns = columns
  }

  async valuesOf(e: Entry, change: ChangeRecord): Promise<{ values: Record<string, JsonValue | null>; unknown: string[] }> {
    if (change.fields.length === 0) return { values: {}, unknown: [] }
    return fieldWrites(change.update, change.fields, await this.#docOf(e))
  }

  #docOf(e: Entry): Promise<Y.Doc | undefined> {
    const meta = this.#meta
    const current = meta?.incarnation
    // A change that saw the current incarnation's first change was made on its document.
    if (meta !== undefined && (current === undefined || saw(this.#columns, e, current))) return (this.#current ??= this.#load(meta))
    const start = this.#incarnationOf(e)
    const key = start ? `${start.origin}:${start.seq}` : ''
    let doc = this.#rebuilt.get(key)
    if (!doc) {
      doc = this.#rebuild(start)
      this.#rebuilt.set(key, doc)
    }
    return doc
  }

  async #load(meta: EntityMeta): Promise<Y.Doc> {
    const { states } = await readStates(this.#snap, [{ ns: this.#ns, id: this.#id, meta, base: this.#base }])
    return createEntityDoc(states[0])
  }

  /**
   * The fresh change that started the incarnation `e` was made on: the latest fresh change it
   * saw (of concurrent ones, the greater dot, which every node keeps); undefined for the first.
   */
  #incarnationOf(e: Entry): Entry | undefined {
    const seen = this.#entries.filter((f) => f.fresh && saw(this.#columns, e, f))
    const latest = seen.filter((f) => !seen.some((g) => g !== f && saw(this.#columns, g, f)))
    return latest.sort(compareDots).at(-1)
  }

  async #rebuild(start: Entry | undefined): Promise<Y.Doc> {
    const members = this.#entries.filter((x) => this.#incarnationOf(x) === start)
    const doc = createEntityDoc()
    const bytes = await this.#snap.getMany(members.map((x) => changeLogKey(x.origin, x.seq)))
    // Oldest first; an update whose predecessors are gone stays pending (its items unknown).
    for (let i = members.length - 1; i >= 0; i--) {
      const b = bytes[i]
      if (b === undefined) continue
      const update = decodeChange(b).update
      applyEntityUpdate(doc, update)
    }
    return doc
  }
}
