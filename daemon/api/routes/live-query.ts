import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import { MeshsyncError } from '../../../crdt/index.ts'
import type { EntityStore, LiveEvent, LiveSink } from '../../store/entity-store.ts'
import { parseCursor } from './changes.ts'

const SSE_HEARTBEAT_MS = 15_000
/** How long a stream ended for a slow reader may take to hand over its last events before its socket is closed. */
const END_GRACE_MS = 10_000
/** How long a run of events (a snapshot, a catch-up) waits for a subscriber that reads nothing before it is dropped. */
const PACE_TIMEOUT_MS = 60_000

/**
 * `POST /v1/ns/:ns/query` with `Accept: text/event-stream`: a live query (docs/queries.md, Live
 * queries). A bad body, cursor or query answers 4xx before the stream starts; then the first
 * events, `ready`, and an event per transition. Unsent events are bounded by
 * `query.liveBufferBytes`: a subscriber that reads too slowly gets `end` (SLOW_CONSUMER) and its
 * stream is closed, so it never holds the node's memory.
 */
export async function streamLiveQuery(store: EntityStore, log: Logger, req: FastifyRequest, reply: FastifyReply, ns: string, body: unknown): Promise<void> {
  const lastEventId = req.headers['last-event-id']
  const resumeFrom = typeof lastEventId === 'string' && lastEventId !== '' ? parseCursor(lastEventId, store.feedCursor) : undefined
  if (resumeFrom !== undefined) store.assertCursor(ns, resumeFrom) // 410 CURSOR_EXPIRED
  const live = await store.live.open(ns, body, resumeFrom)
  reply.hijack()
  const res = reply.raw
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' })
  const limit = store.live.bufferBytes
  let closed = false
  const heartbeat = setInterval(() => write(': keep-alive\n\n'), SSE_HEARTBEAT_MS)

  const close = (): void => {
    if (closed) return
    closed = true
    clearInterval(heartbeat)
    live.close()
  }
  /** Ends the stream with a last `end` event naming why. */
  const finish = (code: string, message: string): void => {
    if (closed) return
    res.write(`event: end\ndata: ${JSON.stringify({ code, message })}\n\n`)
    close()
    res.end()
    // A reader that does not read at all would keep the socket (and its buffer) forever.
    setTimeout(() => res.destroy(), END_GRACE_MS).unref()
  }
  function write(text: string): void {
    if (closed) return
    if (res.writableLength > 0 && res.writableLength + Buffer.byteLength(text) > limit) return dropSlow()
    res.write(text)
  }
  function dropSlow(): void {
    if (closed) return
    store.live.dropped++
    log.warn({ ns, buffered: res.writableLength, limit }, 'a live query subscriber reads too slowly: its stream is closed')
    finish('SLOW_CONSUMER', `the subscriber read too slowly: more than ${limit} bytes of events were waiting (query.liveBufferBytes), or none was read for ${PACE_TIMEOUT_MS / 1000} s; reconnect with Last-Event-ID`)
  }
  const sink: LiveSink = {
    emit: (event) => write(frame(event)),
    pace: () => {
      if (closed || res.writableLength <= limit / 2) return undefined
      return new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer)
          res.off('drain', done)
          res.off('close', done)
          resolve()
        }
        const timer = setTimeout(() => {
          dropSlow()
          done()
        }, PACE_TIMEOUT_MS)
        res.once('drain', done)
        res.once('close', done)
      })
    },
    fail: (error) => {
      const known = error instanceof MeshsyncError
      if (!known) log.error({ err: error, ns }, 'a live query failed')
      finish(known ? error.code : 'INTERNAL', known ? error.message : 'the live query failed (logged by the daemon)')
    },
  }
  res.on('close', close)
  // The client may have gone while the first events were read: its close event came before.
  if (req.raw.socket.destroyed) return close()
  res.write(': meshsync live query\n\n')
  try {
    await live.attach(sink)
  } catch (error) {
    sink.fail(error)
  }
}

/** One event as SSE: `id` is the feed position it brings the subscriber to, when it does. */
function frame(event: LiveEvent): string {
  const id = event.type === 'ready' || ((event.type === 'enter' || event.type === 'change' || event.type === 'leave') && event.cursor !== undefined) ? `id: ${event.cursor}\n` : ''
  return `${id}event: ${event.type}\ndata: ${JSON.stringify(dataOf(event))}\n\n`
}

function dataOf(event: LiveEvent): unknown {
  switch (event.type) {
    case 'enter':
    case 'change':
      return event.entity
    case 'leave':
      return { ns: event.ns, id: event.id, ...(event.deleted && { deleted: true }) }
    case 'reset':
      return { reason: 'entities of the namespace were removed since the cursor (a resync or a tombstone purge): the whole result follows' }
    case 'ready':
      return { cursor: String(event.cursor), count: event.count, ...(event.plan && { plan: event.plan }) }
  }
}
