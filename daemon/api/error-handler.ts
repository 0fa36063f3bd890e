import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { MeshsyncError } from '../../crdt/index.ts'
import { ERROR_STATUS } from '../errors.ts'

/** Fastify's own error codes, mapped to ours. */
const FASTIFY_CODES: Readonly<Record<string, string>> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'INVALID_BODY',
  FST_ERR_BAD_URL: 'INVALID_URL',
  FST_ERR_MAX_PARAM_LENGTH: 'URI_TOO_LONG',
}

/** Every error leaves as `{"error": {"code", "message"}}` with the status its code maps to. */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const { status, code, message } = describe(error)
    // A full disk refuses every write until space is freed: one warning per request, no stack.
    if (code === 'STORAGE_FULL') request.log.warn({ code }, 'write refused: the disk is full')
    else if (status >= 500) request.log.error({ err: error }, 'request failed')
    else request.log.debug({ code }, 'request refused')
    void reply.status(status).send({ error: { code, message } })
  })
  app.setNotFoundHandler((request, reply) => {
    void reply.status(404).send({ error: { code: 'ROUTE_NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` } })
  })
}

/**
 * Fastify's `frameworkErrors` hook: errors raised before routing (a path segment that is not
 * valid percent-encoding, or longer than the router takes) leave in the same shape as the rest.
 */
export function frameworkErrorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const { code, status, message } = describe(error)
  request.log.debug({ code }, 'request refused')
  void reply.status(status).send({ error: { code, message } })
}

function describe(error: FastifyError): { status: number; code: string; message: string } {
  if (error instanceof MeshsyncError) return { status: ERROR_STATUS[error.code] ?? 400, code: error.code, message: error.message }
  if (error.validation) {
    const where = error.validationContext === 'querystring' ? 'INVALID_QUERY' : error.validationContext === 'params' ? 'INVALID_ID' : 'INVALID_BODY'
    return { status: 400, code: where, message: error.message }
  }
  const mapped = error.code ? FASTIFY_CODES[error.code] : undefined
  if (mapped) return { status: ERROR_STATUS[mapped] ?? 400, code: mapped, message: error.message }
  if (error instanceof SyntaxError || (error.statusCode === 400 && /JSON|proto/i.test(error.message))) {
    return { status: 400, code: 'INVALID_JSON', message: error.message }
  }
  if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) return { status: error.statusCode, code: 'BAD_REQUEST', message: error.message }
  return { status: 500, code: 'INTERNAL', message: 'internal error' }
}
