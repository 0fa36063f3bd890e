import type { FastifyInstance, FastifyReply } from 'fastify'
import { assertNamespace } from '../../../crdt/index.ts'
import { RequestError } from '../../errors.ts'
import type { EntityStore, FeedBatch, FeedEntry } from '../../store/entity-store.ts'
import type { ApiContext } from '../context.ts'
import { changesQuery, nsParams } from '../schemas.ts'

const SSE_HEARTBEAT_MS = 15_000

/**
 * The change feed of a namespace: every entity changed after a cursor, deletions included, in
 * commit order. `Accept: text/event-stream` keeps the response open and streams changes live
 * (resume with `Last-Event-ID` or `since`).
 */
export function changeRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get<{ Params: { ns: string }; Querystring: { since?: string; limit?: string } }>(
    '/v1/ns/:ns/changes',
    { schema: { params: nsParams, querystring: changesQuery } },
    async (req, reply) => {
      const { ns } = req.params
      assertNamespace(ns)
      const lastEventId = req.headers['last-event-id']
      const since = parseCursor(typeof lastEventId === 'string' && lastEventId !== '' ? lastEventId : req.query.since, ctx.store.feedCursor)
      const limit = req.query.limit === undefined ? 1000 : Number(req.query.limit)
      if (limit < 1 || limit > 10_000) throw new RequestError('INVALID_QUERY', 'limit must be between 1 and 10000')
      ctx.store.assertCursor(ns, since) // 410 CURSOR_EXPIRED before a stream starts
      if ((req.headers.accept ?? '').includes('text/event-stream')) return streamChanges(ctx.store, ns, since, reply)
      const page = await ctx.store.changes(ns, since, limit)
      return { changes: page.changes.map(({ cursor: _c, ...c }) => c), cursor: String(page.cursor) }
    },
  )
}

/**
 * A cursor from the feed, or `now` (the current end: only changes from here on). A cursor past
 * the end of the feed was not issued by this node's feed (another node's, or from before a
 * restore); accepting it would silently skip every change until the feed caught up with it.
 */
export function parseCursor(value: string | undefined, now: number): number {
  if (value === undefined || value === '') return 0
  if (value === 'now') return now
  if (!/^[0-9]{1,15}$/.test(value) || Number(value) > now) {
    throw new RequestError('INVALID_CURSOR', 'cursor must be a value returned by the change feed of this node')
  }
  return Number(value)
}

/**
 * Streams the feed of `ns` from `since`: first what the store holds, then each durable commit's
 * entries as the store announces them, without reading them back. Whenever the stream cannot
 * tell it has everything up to a commit's first position (it was reading, or positions were
 * taken without entries: a wipe, a purge), it reads from its cursor again.
 */
async function streamChanges(store: EntityStore, ns: string, since: number, reply: FastifyReply): Promise<void> {
  reply.hijack()
  const res = reply.raw
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' })
  /** The last entry sent (what `Last-Event-ID` resumes from). */
  let cursor = since
  /** Every entry of `ns` up to this feed position has been sent; undefined: not known. */
  let position: number | undefined
  let pumping = false
  let again = false
  let closed = false
  const send = (entry: FeedEntry): void => {
    const { cursor: at, ...change } = entry
    res.write(`id: ${at}\nevent: change\ndata: ${JSON.stringify(change)}\n\n`)
    cursor = at
  }
  const pump = async (): Promise<void> => {
    if (pumping) {
      again = true
      return
    }
    pumping = true
    position = undefined
    try {
      let upTo: number
      do {
        again = false
        // Everything up to this position is durable and announced: the reads below see it all.
        upTo = store.feedCursor
        for (;;) {
          const page = await store.changes(ns, cursor, 1000)
          for (const entry of page.changes) {
            if (closed) return
            send(entry)
          }
          if (page.changes.length < 1000) break
        }
      } while (again && !closed)
      // An entry past `upTo` was read before its commit was announced: the announcement is still
      // to come, and sending its entries again must not happen, so stay unsure until it has.
      position = cursor <= upTo ? upTo : undefined
    } catch {
      close()
    } finally {
      pumping = false
    }
  }
  const onFeed = (batch: FeedBatch): void => {
    if (closed) return
    if (pumping || position !== batch.from || batch.removed?.includes(ns)) {
      void pump()
      return
    }
    for (const { ns: of, updatedAt: _u, ...entry } of batch.entries) if (of === ns && entry.cursor > cursor) send(entry)
    position = batch.to
  }
  const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), SSE_HEARTBEAT_MS)
  const close = (): void => {
    if (closed) return
    closed = true
    clearInterval(heartbeat)
    store.off('feed', onFeed)
    res.end()
  }
  store.on('feed', onFeed)
  res.on('close', close)
  res.write(': meshsync change feed\n\n')
  await pump()
}
