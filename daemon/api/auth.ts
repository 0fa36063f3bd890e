import { timingSafeEqual } from 'node:crypto'
import type { FastifyInstance } from 'fastify'

/** Routes reachable over TCP without a token (nothing in them is private). */
const OPEN_ROUTES = new Set(['/v1/health'])

/** Requires `Authorization: Bearer <token>` on every route but the open ones. */
export function requireBearerToken(app: FastifyInstance, token: string): void {
  const expected = Buffer.from(token)
  app.addHook('onRequest', async (request, reply) => {
    if (OPEN_ROUTES.has(request.url.split('?')[0] as string)) return
    const header = request.headers.authorization
    const given = header?.startsWith('Bearer ') ? Buffer.from(header.slice(7).trim()) : undefined
    if (given && given.length === expected.length && timingSafeEqual(given, expected)) return
    return reply.status(401).send({ error: { code: 'UNAUTHORIZED', message: 'missing or wrong bearer token' } })
  })
}
