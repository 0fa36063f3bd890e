/**
 * Live queries (docs/queries.md, Live queries): a query's matches, then each entity that enters,
 * changes within or leaves them, as the store commits. A live query starts from one consistent
 * snapshot and its feed position, then follows the store's durable commits (the `feed` event),
 * applying each one's entries straight from memory when it directly follows what was processed;
 * whenever it cannot tell (it was busy, positions were taken without entries, entities were
 * removed by a wipe or a purge), it reads the feed from its position on a new snapshot instead.
 * The rules of the result are daemon/query/live.ts's.
 */
import type { EventEmitter } from 'node:events'
import { assertNamespace } from '../../crdt/index.ts'
import { parseLiveQuery, LiveResult, type Transition } from '../query/live.ts'
import { project, type Query } from '../query/language.ts'
import type { KvReader, KvStore } from '../storage/kv-store.ts'
import { decodeMeta, type EntityMeta } from './entity-meta.ts'
import { indexesOf, type IndexCatalog } from './indexes.ts'
import { entityMetaKey, feedRange, feedSeqOfKey } from './keys.ts'
import { feedSeqRecord, own, removedRecord } from './meta-records.ts'
import { runQuery, type PlanView } from './query-run.ts'
import type { EntityStoreEvents, EntityView, FeedBatch } from './types.ts'
import { viewOf } from './views.ts'

/** One event of a live query; `cursor` is the feed position it brings the subscriber to. */
export type LiveEvent =
  | { readonly type: 'enter' | 'change'; readonly cursor?: number; readonly entity: EntityView }
  | { readonly type: 'leave'; readonly cursor?: number; readonly ns: string; readonly id: string; readonly deleted: boolean }
  | { readonly type: 'reset' }
  | { readonly type: 'ready'; readonly cursor: number; readonly count: number; readonly plan?: PlanView }

/** Where a live query's events go (the SSE route). */
export interface LiveSink {
  /** Sends (queues) one event. */
  emit(event: LiveEvent): void
  /** A promise while the subscriber should be given time to read (flow control of long runs of events). */
  pace(): Promise<void> | undefined
  /** The query stopped: a read failed. */
  fail(error: unknown): void
}

/** What live queries read of the store. */
export interface LiveQueryDeps {
  readonly kv: KvStore
  readonly events: EventEmitter<EntityStoreEvents>
  readonly catalog: () => IndexCatalog
  readonly liveCount: (ns: string) => number
  readonly maxScan: number
}

/** Feed entries read per round trip. */
const FEED_CHUNK = 256
const textDecoder = new TextDecoder()

/** The live queries of a store, and their counts for /metrics. */
export class LiveQueries {
  readonly #deps: LiveQueryDeps
  readonly #open = new Set<LiveQuery>()
  /** Most bytes of unsent events one subscriber's stream may hold (`query.liveBufferBytes`). */
  readonly bufferBytes: number
  /** Streams ended because their subscriber read too slowly. */
  dropped = 0

  constructor(deps: LiveQueryDeps, bufferBytes: number) {
    this.#deps = deps
    this.bufferBytes = bufferBytes
  }

  /** Open live queries per namespace. */
  subscribers(): Map<string, number> {
    const out = new Map<string, number>()
    for (const q of this.#open) out.set(q.ns, (out.get(q.ns) ?? 0) + 1)
    return out
  }

  /**
   * Parses the body (INVALID_QUERY) and reads the first events on one snapshot
   * (QUERY_NEEDS_INDEX): the whole result, or after `resumeFrom` (a feed position the caller has
   * checked) what changed since. Nothing is sent until {@link LiveQuery.attach}.
   */
  async open(ns: string, body: unknown, resumeFrom: number | undefined): Promise<LiveQuery> {
    assertNamespace(ns)
    const live = new LiveQuery(this.#deps, ns, parseLiveQuery(body), () => this.#open.delete(live))
    this.#open.add(live)
    try {
      await live.prepare(resumeFrom)
    } catch (error) {
      live.close()
      throw error
    }
    return live
  }
}

/** One subscriber's live query. */
export class LiveQuery {
  readonly ns: string
  readonly #deps: LiveQueryDeps
  readonly #query: Query
  readonly #result: LiveResult
  readonly #onClose: () => void
  /** Every change of the namespace up to this feed position is in the events made so far. */
  #at = 0
  #first: LiveEvent[] = []
  #sink: LiveSink | undefined
  /** Reading the store or sending a run of events: commits announced meanwhile are read afterwards. */
  #busy = true
  #dirty = false
  #closed = false
  readonly #onFeed = (batch: FeedBatch): void => this.#feed(batch)

  constructor(deps: LiveQueryDeps, ns: string, query: Query, onClose: () => void) {
    this.#deps = deps
    this.ns = ns
    this.#query = query
    this.#result = new LiveResult(query)
    this.#onClose = onClose
  }

  /** Follows commits first (so none is missed), then reads the first events. */
  async prepare(resumeFrom: number | undefined): Promise<void> {
    this.#deps.events.on('feed', this.#onFeed)
    await this.#read(async (reader, position, removedAt) => {
      const { items, plan } = await this.#matches(reader)
      const ids = items.map((e) => e.id)
      const byId = new Map(items.map((e) => [e.id, e]))
      const events: LiveEvent[] = []
      if (resumeFrom !== undefined && removedAt <= resumeFrom) {
        const changed: { id: string; cursor: number; meta: EntityMeta | undefined }[] = []
        for await (const entry of readFeed(reader, this.ns, resumeFrom)) changed.push(entry)
        const transitions = this.#result.resume(
          ids,
          changed.map((c) => c.id),
        )
        transitions.forEach(({ id, type }, i) => {
          const { cursor, meta } = changed[i] as (typeof changed)[number]
          const entity = byId.get(id)
          events.push(type === 'enter' && entity ? { type, cursor, entity } : this.#leave(id, meta, cursor))
        })
      } else {
        // A first subscription, or entities were removed since the cursor without entries (a
        // resync's wipe, a purge): which of them the subscriber holds cannot be told, so it
        // starts over.
        if (resumeFrom !== undefined) events.push({ type: 'reset' })
        this.#result.replace(ids, new Set())
        for (const entity of items) events.push({ type: 'enter', entity })
      }
      events.push({ type: 'ready', cursor: position, count: ids.length, ...(this.#query.explain && plan && { plan }) })
      this.#first = events
      this.#at = position
    })
  }

  /** Sends the first events to `sink`, then what commits bring, until {@link close}. */
  async attach(sink: LiveSink): Promise<void> {
    this.#sink = sink
    const first = this.#first
    this.#first = []
    try {
      for (const event of first) {
        if (this.#closed) return
        sink.emit(event)
        await sink.pace()
      }
    } finally {
      this.#busy = false
    }
    // Commits announced while the first events were read or sent.
    if (this.#dirty) void this.#catchUp()
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#deps.events.off('feed', this.#onFeed)
    this.#onClose()
  }

  #feed(batch: FeedBatch): void {
    if (this.#closed) return
    if (this.#busy) {
      this.#dirty = true
      return
    }
    if (batch.to <= this.#at) return // already read (its batch was in a snapshot before it was announced)
    if (batch.from !== this.#at || batch.removed?.includes(this.ns)) {
      void this.#catchUp()
      return
    }
    for (const entry of batch.entries) {
      if (entry.ns !== this.ns) continue
      const row = entry.op === 'delete' ? undefined : { id: entry.id, updatedAt: entry.updatedAt, value: entry.value ?? {} }
      const type = this.#result.apply(entry.id, row)
      if (type === undefined) continue
      if (type === 'leave') this.#emit({ type, cursor: entry.cursor, ns: this.ns, id: entry.id, deleted: entry.op === 'delete' })
      else {
        const { cursor: _c, op: _o, value, ...rest } = entry
        const view: EntityView = { ...rest, value: value ?? {}, updatedAt: new Date(entry.updatedAt).toISOString() }
        this.#emit({ type, cursor: entry.cursor, entity: this.#shown(view) })
      }
    }
    this.#at = batch.to
  }

  /** Reads what changed after the position on a snapshot, until no commit came meanwhile. */
  async #catchUp(): Promise<void> {
    if (this.#busy || this.#closed) {
      this.#dirty = true
      return
    }
    this.#busy = true
    try {
      do {
        this.#dirty = false
        const events: LiveEvent[] = []
        await this.#read(async (reader, position, removedAt) => {
          if (position <= this.#at) return
          if (removedAt > this.#at) {
            // Entities went without entries: compare the whole result with the subscriber's.
            const changed = new Set<string>()
            for await (const { id } of readFeed(reader, this.ns, this.#at)) changed.add(id)
            const { items } = await this.#matches(reader)
            const byId = new Map(items.map((e) => [e.id, e]))
            const gone = new Map<string, EntityMeta | undefined>()
            const transitions = this.#result.replace(
              items.map((e) => e.id),
              changed,
            )
            const leaving = transitions.filter((t) => t.type === 'leave').map((t) => t.id)
            const metas = await reader.getMany(leaving.map((id) => entityMetaKey(this.ns, id)))
            leaving.forEach((id, i) => gone.set(id, metas[i] ? decodeMeta(metas[i]) : undefined))
            for (const { id, type } of transitions) {
              const entity = byId.get(id)
              events.push(type !== 'leave' && entity ? { type, entity } : this.#leave(id, gone.get(id)))
            }
            // The last event brings the subscriber to the position; those before it do not.
            const last = events.pop()
            if (last) events.push({ ...last, cursor: position } as LiveEvent)
          } else {
            for await (const { id, cursor, meta } of readFeed(reader, this.ns, this.#at)) {
              const row = meta && !meta.deleted ? { id, updatedAt: meta.updatedAt, value: meta.value } : undefined
              const type: Transition | undefined = this.#result.apply(id, row)
              if (type === undefined) continue
              events.push(type === 'leave' || !meta ? this.#leave(id, meta, cursor) : { type, cursor, entity: this.#shown(viewOf(this.ns, id, meta)) })
            }
          }
          this.#at = position
        })
        for (const event of events) {
          if (this.#closed) return
          this.#emit(event)
          await this.#sink?.pace()
        }
      } while (this.#dirty && !this.#closed)
    } catch (error) {
      if (!this.#closed) this.#sink?.fail(error)
    } finally {
      this.#busy = false
    }
  }

  /** Runs `fn` on a snapshot with its feed position and the namespace's latest removal. */
  async #read(fn: (reader: KvReader, position: number, removedAt: number) => Promise<void>): Promise<void> {
    await this.#deps.kv.whenOpen?.()
    const snapshot = this.#deps.kv.snapshot()
    try {
      const [seq, removed] = await snapshot.getMany([feedSeqRecord.key, removedRecord.key])
      await fn(snapshot, feedSeqRecord.decode(seq), own(removedRecord.decode(removed), this.ns) ?? 0)
    } finally {
      await snapshot.close()
    }
  }

  /** Every match on the reader, in the query's order (QUERY_NEEDS_INDEX past `query.maxScan`). */
  async #matches(reader: KvReader): Promise<{ items: EntityView[]; plan?: PlanView }> {
    const indexes = indexesOf(this.#deps.catalog(), this.ns).filter((i) => i.state === 'ready')
    const { cursor: _c, ...query } = this.#query
    const answer = await runQuery(reader, this.ns, { ...query, limit: Number.MAX_SAFE_INTEGER, count: false, explain: true }, { indexes, maxScan: this.#deps.maxScan, liveCount: this.#deps.liveCount(this.ns) })
    return { items: answer.items ?? [], ...(answer.plan && { plan: answer.plan }) }
  }

  #leave(id: string, meta: EntityMeta | undefined, cursor?: number): LiveEvent {
    return { type: 'leave', ...(cursor !== undefined && { cursor }), ns: this.ns, id, deleted: !meta || meta.deleted }
  }

  #shown(view: EntityView): EntityView {
    return this.#query.fields ? { ...view, value: project(view.value, this.#query.fields) } : view
  }

  #emit(event: LiveEvent): void {
    if (!this.#closed) this.#sink?.emit(event)
  }
}

/** The feed of `ns` after `after` on a snapshot, with each entity's meta there (in feed order). */
async function* readFeed(reader: KvReader, ns: string, after: number): AsyncGenerator<{ id: string; cursor: number; meta: EntityMeta | undefined }> {
  let chunk: { id: string; cursor: number }[] = []
  const flush = async function* (): AsyncGenerator<{ id: string; cursor: number; meta: EntityMeta | undefined }> {
    const metas = await reader.getMany(chunk.map((c) => entityMetaKey(ns, c.id)))
    for (const [i, c] of chunk.entries()) {
      const bytes = metas[i]
      yield { ...c, meta: bytes ? decodeMeta(bytes) : undefined }
    }
    chunk = []
  }
  for await (const [key, value] of reader.iterate(feedRange(ns, after))) {
    chunk.push({ id: (JSON.parse(textDecoder.decode(value)) as { id: string }).id, cursor: feedSeqOfKey(key) })
    if (chunk.length === FEED_CHUNK) yield* flush()
  }
  if (chunk.length > 0) yield* flush()
}
