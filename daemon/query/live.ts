/**
 * Live queries' rules (docs/queries.md, Live queries): which members a live query body takes, and
 * how a result that follows the change feed moves when an entity changes. Pure: no store, no I/O
 * (daemon/store/live-query.ts reads the store and calls these).
 */
import { matches, parseQuery, QueryError, type Query, type QueryRow } from './language.ts'

/** What a change does to a live result: the entity comes in, changes while in, or goes out. */
export type Transition = 'enter' | 'change' | 'leave'

/**
 * Parses a live query body: a query (language.ts) without `limit`, `cursor` or `count`. A live
 * result holds every match of `where`; `sort` orders the first snapshot only, `fields` projects
 * every entity sent, `explain` adds the snapshot's plan to its `ready` event.
 */
export function parseLiveQuery(body: unknown): Query {
  const query = parseQuery(body)
  const given = body as Record<string, unknown>
  if (given.limit !== undefined) throw new QueryError('limit', 'a live query follows every match of its where (page the result with a query without Accept: text/event-stream)')
  if (given.cursor !== undefined) throw new QueryError('cursor', 'a live query resumes with the Last-Event-ID header, not a cursor')
  if (given.count !== undefined) throw new QueryError('count', 'a live query sends entities; its ready event holds their count')
  return query
}

/**
 * The ids in a live result, as its subscriber was told them. Every event it returns is one the
 * subscriber applies as: `enter` and `change` put the entity, `leave` removes it.
 */
export class LiveResult {
  readonly #query: Query
  #members = new Set<string>()

  constructor(query: Query) {
    this.#query = query
  }

  get size(): number {
    return this.#members.size
  }

  has(id: string): boolean {
    return this.#members.has(id)
  }

  /** Whether an entity (undefined: deleted or gone) is a match. */
  matches(row: QueryRow | undefined): boolean {
    return row !== undefined && matches(this.#query.where, row)
  }

  /** An entity changed to `row` (undefined: deleted or gone): the transition, if any. */
  apply(id: string, row: QueryRow | undefined): Transition | undefined {
    const now = this.matches(row)
    const was = this.#members.has(id)
    if (now) this.#members.add(id)
    else this.#members.delete(id)
    if (now) return was ? 'change' : 'enter'
    return was ? 'leave' : undefined
  }

  /**
   * The result is now `ids` (the matches of a fresh read), after a change the subscriber was not
   * told entry by entry (entities removed without feed entries): `leave` for each member not in
   * it, `enter` for each match not a member, `change` for members still in it that `changed`.
   */
  replace(ids: readonly string[], changed: ReadonlySet<string>): { id: string; type: Transition }[] {
    const next = new Set(ids)
    const out: { id: string; type: Transition }[] = []
    for (const id of this.#members) if (!next.has(id)) out.push({ id, type: 'leave' })
    for (const id of ids) {
      if (!this.#members.has(id)) out.push({ id, type: 'enter' })
      else if (changed.has(id)) out.push({ id, type: 'change' })
    }
    this.#members = next
    return out
  }

  /**
   * A resumed subscription: the result is now `ids`. The subscriber's membership of an entity
   * changed since its cursor is not known here, so each of those gets `enter` when it matches now
   * and `leave` when it does not (one it never held is left alone by the subscriber); an entity
   * unchanged since then matched then as it does now, so the subscriber holds it already.
   */
  resume(ids: readonly string[], changed: readonly string[]): { id: string; type: 'enter' | 'leave' }[] {
    this.#members = new Set(ids)
    return changed.map((id) => ({ id, type: this.#members.has(id) ? 'enter' : 'leave' }))
  }
}
