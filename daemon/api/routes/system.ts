import type { FastifyInstance } from 'fastify'
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
      versionVector: ctx.store.versionVector,
      entities: Object.values(counts).reduce((a, b) => a + b, 0),
      namespaces: counts,
      uptimeMs: Date.now() - ctx.startedAt,
    }
  })

  app.get('/v1/peers', async () => ctx.peers())

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
}
