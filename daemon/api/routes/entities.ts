import type { FastifyInstance } from 'fastify'
import { assertNamespace, MeshsyncError, type JsonRecord, type TextSplice } from '../../../crdt/index.ts'
import { RequestError } from '../../errors.ts'
import type { LocalOp } from '../../store/entity-store.ts'
import { BatchOpError, failedOpIndex } from '../batch-errors.ts'
import type { ApiContext } from '../context.ts'
import { batchBody, entityParams, listQuery, nsParams, recordBody, textBody, textParams } from '../schemas.ts'

type EntityParams = { ns: string; id: string }
type TextParams = EntityParams & { name: string }

const entityReply = { 200: { $ref: 'Entity#' } }

/** Entity CRUD, listing, atomic batches and collaborative text. */
export function entityRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const { store } = ctx

  app.get<{ Params: EntityParams }>('/v1/ns/:ns/entities/:id', { schema: { params: entityParams, response: entityReply } }, async (req) =>
    store.get(req.params.ns, req.params.id),
  )

  app.put<{ Params: EntityParams; Body: JsonRecord }>(
    '/v1/ns/:ns/entities/:id',
    { schema: { params: entityParams, body: recordBody, response: entityReply } },
    async (req) => one(await store.write([{ op: 'put', ns: req.params.ns, id: req.params.id, value: req.body }])),
  )

  app.patch<{ Params: EntityParams; Body: JsonRecord }>(
    '/v1/ns/:ns/entities/:id',
    { schema: { params: entityParams, body: recordBody, response: entityReply } },
    async (req) => one(await store.write([{ op: 'patch', ns: req.params.ns, id: req.params.id, value: req.body }])),
  )

  app.delete<{ Params: EntityParams }>('/v1/ns/:ns/entities/:id', { schema: { params: entityParams, response: entityReply } }, async (req) =>
    one(await store.write([{ op: 'delete', ns: req.params.ns, id: req.params.id }])),
  )

  app.get<{ Params: { ns: string }; Querystring: { prefix?: string; after?: string; limit?: string } }>(
    '/v1/ns/:ns/entities',
    { schema: { params: nsParams, querystring: listQuery } },
    async (req) => {
      assertNamespace(req.params.ns)
      const limit = req.query.limit === undefined ? 100 : Number(req.query.limit)
      if (limit < 1 || limit > 1000) throw new RequestError('INVALID_QUERY', 'limit must be between 1 and 1000')
      return store.list(req.params.ns, {
        limit,
        ...(req.query.prefix !== undefined && { prefix: req.query.prefix }),
        ...(req.query.after !== undefined && { after: req.query.after }),
      })
    },
  )

  app.post<{ Body: { ops: { op: 'put' | 'patch' | 'delete'; ns: string; id: string; value?: JsonRecord }[] } }>(
    '/v1/batch',
    { schema: { body: batchBody } },
    async (req) => {
      const ops: LocalOp[] = req.body.ops.map((o, i) => {
        if (o.op === 'delete') {
          if (o.value !== undefined) throw new BatchOpError(i, new RequestError('INVALID_BODY', 'a delete takes no value'))
          return { op: 'delete', ns: o.ns, id: o.id }
        }
        if (o.value === undefined) throw new BatchOpError(i, new RequestError('INVALID_BODY', `${o.op} needs a value`))
        return { op: o.op, ns: o.ns, id: o.id, value: o.value }
      })
      try {
        return { results: await store.write(ops) }
      } catch (error) {
        const index = error instanceof MeshsyncError ? failedOpIndex(ops, error) : undefined
        if (index !== undefined) throw new BatchOpError(index, error as MeshsyncError)
        throw error
      }
    },
  )

  app.post<{ Params: EntityParams; Body: JsonRecord }>(
    '/v1/ns/:ns/entities/:id/resolve',
    { schema: { params: entityParams, body: recordBody, response: entityReply } },
    async (req) => one(await store.write([{ op: 'resolve', ns: req.params.ns, id: req.params.id, value: req.body }])),
  )

  app.post<{ Params: { ns: string }; Body: { from?: string } | undefined }>(
    '/v1/ns/:ns/resync',
    {
      schema: {
        params: nsParams,
        body: { type: 'object', properties: { from: { type: 'string', minLength: 1, maxLength: 128 } }, additionalProperties: false },
      },
    },
    async (req) => {
      assertNamespace(req.params.ns)
      return ctx.resync(req.params.ns, req.body?.from)
    },
  )

  app.get<{ Querystring: { ns?: string } }>(
    '/v1/conflicts',
    { schema: { querystring: { type: 'object', properties: { ns: { type: 'string', maxLength: 64 } }, additionalProperties: false } } },
    async (req) => store.conflicts(req.query.ns !== undefined ? { ns: req.query.ns } : {}),
  )

  app.get<{ Params: EntityParams }>('/v1/ns/:ns/entities/:id/text', { schema: { params: entityParams } }, async (req) =>
    store.textNames(req.params.ns, req.params.id),
  )

  app.get<{ Params: TextParams }>('/v1/ns/:ns/entities/:id/text/:name', { schema: { params: textParams } }, async (req) =>
    store.getText(req.params.ns, req.params.id, req.params.name),
  )

  app.post<{ Params: TextParams; Body: { ops: TextSplice[] } }>(
    '/v1/ns/:ns/entities/:id/text/:name',
    { schema: { params: textParams, body: textBody } },
    async (req) => {
      const { ns, id, name } = req.params
      const [view] = await store.write([{ op: 'text', ns, id, name, splices: req.body.ops }])
      return { ns, id, name, version: view?.version }
    },
  )
}

function one<T>(views: readonly T[]): T {
  return views[0] as T
}
