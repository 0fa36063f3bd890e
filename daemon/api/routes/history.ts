import type { FastifyInstance } from 'fastify'
import { RequestError } from '../../errors.ts'
import type { ApiContext } from '../context.ts'
import { entityParams } from '../schemas.ts'

const historyQuery = {
  type: 'object',
  properties: { limit: { type: 'string', pattern: '^[0-9]{1,15}$' }, after: { type: 'string', maxLength: 200 } },
  additionalProperties: false,
} as const

/** An entity's history, and the check of the history index against the change log (docs/history.md). */
export function historyRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get<{ Params: { ns: string; id: string }; Querystring: { limit?: string; after?: string } }>(
    '/v1/ns/:ns/entities/:id/history',
    { schema: { params: entityParams, querystring: historyQuery } },
    async (req) => {
      const limit = req.query.limit === undefined ? 100 : Number(req.query.limit)
      if (limit < 1 || limit > 1000) throw new RequestError('INVALID_QUERY', 'limit must be between 1 and 1000')
      return ctx.store.history(req.params.ns, req.params.id, { limit, after: req.query.after })
    },
  )

  app.post('/v1/history/verify', async () => ctx.store.verifyHistory())
}
