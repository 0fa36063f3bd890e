import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { ApiContext } from '../context.ts'
import { streamLiveQuery } from './live-query.ts'
import { nsParams } from '../schemas.ts'

type IndexParams = { ns: string; name: string }

const indexParams = {
  type: 'object',
  properties: { ns: { type: 'string' }, name: { type: 'string', maxLength: 64 } },
  required: ['ns', 'name'],
} as const

/** Queries and secondary indexes (docs/queries.md, docs/api.md). */
export function queryRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const { store } = ctx

  // The body is checked by the query language itself, which names the part at fault (INVALID_QUERY).
  // `Accept: text/event-stream` makes it a live query (live-query.ts).
  app.post<{ Params: { ns: string }; Body: unknown }>('/v1/ns/:ns/query', { schema: { params: nsParams, body: { type: 'object' } } }, async (req, reply) => {
    if ((req.headers.accept ?? '').includes('text/event-stream')) return streamLiveQuery(store, req.log as Logger, req, reply, req.params.ns, req.body)
    return store.indexes.query(req.params.ns, req.body)
  })

  app.get<{ Params: { ns: string } }>('/v1/ns/:ns/indexes', { schema: { params: nsParams } }, async (req) => ({ indexes: store.indexes.list(req.params.ns) }))

  app.get<{ Params: IndexParams }>('/v1/ns/:ns/indexes/:name', { schema: { params: indexParams } }, async (req) => store.indexes.get(req.params.ns, req.params.name))

  app.put<{ Params: IndexParams; Body: { fields: unknown } }>(
    '/v1/ns/:ns/indexes/:name',
    { schema: { params: indexParams, body: { type: 'object', properties: { fields: { type: 'array' } }, required: ['fields'], additionalProperties: false } } },
    async (req, reply) => {
      const { index, created } = await store.indexes.create(req.params.ns, req.params.name, req.body.fields)
      return reply.code(created ? 201 : 200).send(index)
    },
  )

  app.delete<{ Params: IndexParams }>('/v1/ns/:ns/indexes/:name', { schema: { params: indexParams } }, async (req) => {
    await store.indexes.drop(req.params.ns, req.params.name)
    return { ns: req.params.ns, name: req.params.name, dropped: true }
  })

  app.post<{ Params: IndexParams }>('/v1/ns/:ns/indexes/:name/verify', { schema: { params: indexParams } }, async (req) => store.indexes.verify(req.params.ns, req.params.name))
}
