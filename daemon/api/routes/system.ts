import type { FastifyInstance } from 'fastify'
import { DialError } from '../../../transport/dial-diagnosis.ts'
import { RequestError } from '../../errors.ts'
import type { ApiContext } from '../context.ts'

/** Health, status, peers and the OpenAPI document. */
export function systemRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get('/v1/health', { schema: { response: { 200: { type: 'object', properties: { ok: { type: 'boolean' } } } } } }, async () => ({ ok: true }))

  app.get('/v1/status', async () => {
    const counts = ctx.store.entityCounts
    return {
      nodeId: ctx.nodeId,
      peerId: ctx.peerId,
      listen: ctx.listen(),
      peers: ctx.peers().filter((p) => p.connected).length,
      gossip: ctx.gossip(),
      versionVector: ctx.store.versionVector,
      entities: Object.values(counts).reduce((a, b) => a + b, 0),
      namespaces: counts,
      uptimeMs: Date.now() - ctx.startedAt,
      gc: { ...ctx.store.gcStats, graceMs: ctx.store.tombstoneGraceMs, purgedNamespaces: Object.keys(ctx.store.purgeHorizon) },
      indexes: ctx.store.indexes.list().map(({ ns, name, state, built, total }) => ({ ns, name, state, built, total })),
      ...(ctx.backups && { backups: ctx.backups.status() }),
    }
  })

  app.get('/v1/peers', async () => ctx.peers())

  app.post<{ Body: { multiaddr: string } }>(
    '/v1/peers',
    {
      schema: {
        body: {
          type: 'object',
          properties: { multiaddr: { type: 'string', minLength: 1, maxLength: 1024, pattern: '^/' } },
          required: ['multiaddr'],
          additionalProperties: false,
        },
      },
    },
    async (req) => {
      try {
        return { peerId: await ctx.dial(req.body.multiaddr), connected: true }
      } catch (cause) {
        // A DialError names the cause with its own code (docs/operations.md, Dial failures).
        if (cause instanceof DialError) throw cause
        throw new RequestError('DIAL_FAILED', `could not dial ${req.body.multiaddr}: ${cause instanceof Error ? cause.message : String(cause)}`)
      }
    },
  )

  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
    const { contentType, body } = await ctx.metrics()
    return reply.type(contentType).send(body)
  })

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
}
