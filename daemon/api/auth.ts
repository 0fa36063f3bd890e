import { timingSafeEqual } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type { DashboardSession } from '../dashboard/session.ts'
import { errorReply } from './error-handler.ts'

/** Routes reachable over TCP without a token (nothing in them is private). */
const OPEN_ROUTES = new Set(['/v1/health'])

/**
 * Requires `Authorization: Bearer <token>` on every route but the open ones; with a dashboard
 * session, its cookie (same-origin requests only) and its `/?token=` login are accepted too.
 */
export function requireBearerToken(app: FastifyInstance, token: string, session?: DashboardSession): void {
  const expected = Buffer.from(token)
  app.addHook('onRequest', async (request, reply) => {
    if (OPEN_ROUTES.has(request.url.split('?')[0] as string)) return
    const header = request.headers.authorization
    const path = request.url.split('?')[0] as string
    // Browsers cannot set headers on a WebSocket: the Yjs endpoint also takes `?token=`.
    const queryToken = path.startsWith('/v1/yjs/') ? new URL(request.url, 'http://x').searchParams.get('token') : null
    const given = header?.startsWith('Bearer ') ? Buffer.from(header.slice(7).trim()) : queryToken !== null ? Buffer.from(queryToken) : undefined
    if (given && given.length === expected.length && timingSafeEqual(given, expected)) return
    if (session && (session.authorizes(request) || session.isLogin(request))) return
    const { status, body } = errorReply('UNAUTHORIZED', 'missing or wrong bearer token')
    return reply.status(status).send(body)
  })
}
