import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { MeshsyncError } from '../../crdt/index.ts'
import { DialError } from '../../transport/dial-diagnosis.ts'
import { ERROR_CODES, isApiErrorCode, type ApiErrorCode } from '../errors.ts'

/** Fastify's own error codes, mapped to ours. */
const FASTIFY_CODES: Readonly<Record<string, ApiErrorCode>> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'INVALID_BODY',
  FST_ERR_BAD_URL: 'INVALID_URL',
  FST_ERR_MAX_PARAM_LENGTH: 'URI_TOO_LONG',
}

/** The body of every error response (docs/api.md, Errors). */
export interface ErrorBody {
  /** `index`: which op of a batch was refused (`POST /v1/batch`, docs/api.md, Batches). */
  readonly error: { readonly code: ApiErrorCode; readonly message: string; readonly index?: number }
}

/** An error that names which op of a batch it is about (its `index` goes into the error body). */
export interface IndexedError {
  readonly index: number
}

/** An error that says when to try again (the `Retry-After` header, in seconds). */
export interface RetryAfter {
  readonly retryAfterSec: number
}

/** What an error becomes on the wire; `unknownCode`: a meshsync error whose code has no status. */
export interface ErrorReply {
  readonly status: number
  readonly body: ErrorBody
  readonly unknownCode?: string
  /** Seconds for the `Retry-After` header. */
  readonly retryAfterSec?: number
}

/** The answer of an API code: its status from the table and the `{"error": {...}}` body. */
export function errorReply(code: ApiErrorCode, message: string): ErrorReply {
  return { status: ERROR_CODES[code].status, body: { error: { code, message } } }
}

/** Every error leaves as `{"error": {"code", "message"}}` with the status its code maps to. */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const { status, body, unknownCode, retryAfterSec } = describeError(error)
    const { code } = body.error
    // A full disk refuses every write until space is freed: one warning per request, no stack.
    if (code === 'STORAGE_FULL') request.log.warn({ code }, 'write refused: the disk is full')
    // A backup stopped by its deadline or by the daemon stopping: expected, no stack.
    else if (code === 'BACKUP_ABORTED') request.log.warn({ code }, body.error.message)
    // A dial that failed (POST /v1/peers): the message names the address and the likely cause.
    else if (error instanceof DialError) request.log.warn({ code }, body.error.message)
    else if (unknownCode !== undefined) request.log.error({ err: error, code: unknownCode }, 'request failed with a code that has no HTTP status (daemon/errors.ts)')
    else if (status >= 500) request.log.error({ err: error }, 'request failed')
    else request.log.debug({ code }, 'request refused')
    if (retryAfterSec !== undefined) void reply.header('retry-after', String(retryAfterSec))
    void reply.status(status).send(body)
  })
  // Every route's pattern and method, so that a known path asked with another method is told so.
  const routes: { readonly pattern: RegExp; readonly methods: readonly string[] }[] = []
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    routes.push({ pattern: routePattern(route.url ?? route.path), methods })
  })
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? ''
    const allowed = [...new Set(routes.filter((r) => r.pattern.test(path)).flatMap((r) => r.methods))].sort()
    if (allowed.length > 0) {
      const { status, body } = errorReply('METHOD_NOT_ALLOWED', `${request.method} is not allowed on ${path} (allowed: ${allowed.join(', ')})`)
      void reply.status(status).header('allow', allowed.join(', ')).send(body)
      return
    }
    const { status, body } = errorReply('ROUTE_NOT_FOUND', `no route ${request.method} ${path}`)
    void reply.status(status).send(body)
  })
}

/** A route's URL pattern (`/v1/ns/:ns/entities/:id`, `/dashboard/*`) as a regular expression. */
function routePattern(url: string): RegExp {
  const source = url
    .split('/')
    .map((part) => (part === '*' ? '.*' : part.startsWith(':') ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/')
  return new RegExp(`^${source}/?$`)
}

/**
 * Fastify's `frameworkErrors` hook: errors raised before routing (a path segment that is not
 * valid percent-encoding, or longer than the router takes) leave in the same shape as the rest.
 */
export function frameworkErrorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const { status, body } = describeError(error)
  request.log.debug({ code: body.error.code }, 'request refused')
  void reply.status(status).send(body)
}

/**
 * The reply to an error: a meshsync error by its code's status in ERROR_CODES (a code without
 * one is a bug: 500 `INTERNAL`, flagged in `unknownCode` for the log), fastify's own errors by
 * their mapping, anything else 500 `INTERNAL` without its message.
 */
export function describeError(error: FastifyError | Error): ErrorReply {
  if (error instanceof MeshsyncError) {
    if (!isApiErrorCode(error.code)) return { ...errorReply('INTERNAL', 'internal error'), unknownCode: error.code }
    const reply = errorReply(error.code, error.message)
    const { index } = error as Partial<IndexedError>
    const { retryAfterSec } = error as Partial<RetryAfter>
    return {
      ...reply,
      ...(typeof index === 'number' && { body: { error: { ...reply.body.error, index } } }),
      ...(typeof retryAfterSec === 'number' && { retryAfterSec }),
    }
  }
  const fastifyError = error as Partial<FastifyError>
  if (fastifyError.validation) {
    const where = fastifyError.validationContext === 'querystring' ? 'INVALID_QUERY' : fastifyError.validationContext === 'params' ? 'INVALID_ID' : 'INVALID_BODY'
    const reply = errorReply(where, error.message)
    // A body whose `ops[i]` breaks the schema (a batch, text splices): the index is in the body too.
    const op = /^\/ops\/(\d+)(?:\/|$)/.exec(fastifyError.validation[0]?.instancePath ?? '')
    return op ? { ...reply, body: { error: { ...reply.body.error, index: Number(op[1]) } } } : reply
  }
  const mapped = fastifyError.code !== undefined ? FASTIFY_CODES[fastifyError.code] : undefined
  if (mapped) return errorReply(mapped, error.message)
  const statusCode = fastifyError.statusCode
  if (error instanceof SyntaxError || (statusCode === 400 && /JSON|proto/i.test(error.message))) return errorReply('INVALID_JSON', error.message)
  // Another 4xx of the HTTP layer keeps the status it gave (docs/api.md, Errors: BAD_REQUEST).
  if (statusCode !== undefined && statusCode >= 400 && statusCode < 500) return { status: statusCode, body: { error: { code: 'BAD_REQUEST', message: error.message } } }
  return errorReply('INTERNAL', 'internal error')
}
