import swagger from '@fastify/swagger'
import websocket from '@fastify/websocket'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { dashboardRoutes } from '../dashboard/routes.ts'
import { DashboardSession } from '../dashboard/session.ts'
import { requireBearerToken } from './auth.ts'
import type { ApiContext } from './context.ts'
import { frameworkErrorHandler, installErrorHandling } from './error-handler.ts'
import { backupRoutes } from './routes/backups.ts'
import { changeRoutes } from './routes/changes.ts'
import { entityRoutes } from './routes/entities.ts'
import { historyRoutes } from './routes/history.ts'
import { queryRoutes } from './routes/queries.ts'
import { systemRoutes } from './routes/system.ts'
import { yjsWebsocketRoutes } from './routes/yjs-websocket.ts'
import { sharedSchemas } from './schemas.ts'

/** Longest path parameter (decoded) the router accepts; longer ones are refused before routing. */
const MAX_PATH_SEGMENT = 1024

/** How one listener of the API is set up. */
export interface ApiServerOptions {
  readonly logger: Logger
  readonly bodyLimit: number
  /** Bearer token required on this listener (TCP); absent for the Unix socket. */
  readonly token?: string
}

/**
 * One fastify instance with every v1 route. The daemon makes two: TCP with a bearer token and the
 * Unix socket without one, so both serve exactly the same routes.
 */
export async function createApiServer(ctx: ApiContext, options: ApiServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger,
    bodyLimit: options.bodyLimit,
    logController: new LogController({ disableRequestLogging: true }),
    forceCloseConnections: true,
    return503OnClosing: true,
    // An entity id is up to 256 characters (docs/architecture.md, Data model); the router's default cap is 100, which
    // refused valid ids before the store could judge them. Longer segments get URI_TOO_LONG.
    routerOptions: { maxParamLength: MAX_PATH_SEGMENT },
    frameworkErrors: frameworkErrorHandler,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } },
  })
  for (const schema of sharedSchemas) app.addSchema(schema)
  await app.register(swagger, {
    openapi: {
      info: { title: 'meshsync local API', version: '1.0.0', description: 'REST API of one meshsync node (docs/api.md).' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  })
  await app.register(websocket, { options: { maxPayload: 8 * 1024 * 1024 } })
  installErrorHandling(app)
  // Only JSON bodies: without this, fastify's built-in text/plain parser hands a string to the
  // schema (400 INVALID_BODY) instead of refusing the media type (415).
  app.removeContentTypeParser('text/plain')
  const session = options.token !== undefined ? new DashboardSession(options.token, ctx.nodeId) : undefined
  if (options.token !== undefined) requireBearerToken(app, options.token, session)
  systemRoutes(app, ctx)
  entityRoutes(app, ctx)
  historyRoutes(app, ctx)
  queryRoutes(app, ctx)
  backupRoutes(app, ctx)
  changeRoutes(app, ctx)
  // In a context of its own, so that its onSend hook (the sign-in page for a browser) runs on the
  // dashboard's responses only, not on every API response.
  await app.register(async (dashboard) => dashboardRoutes(dashboard, session ? { session } : {}))
  yjsWebsocketRoutes(app, ctx)
  await app.ready()
  return app
}
