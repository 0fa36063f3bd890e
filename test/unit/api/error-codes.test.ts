import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import { fileURLToPath } from 'node:url'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { MeshsyncError, ValidationError } from '../../../crdt/index.ts'
import { installErrorHandling } from '../../../daemon/api/error-handler.ts'
import { DaemonError, ERROR_CODES, isErrorCode, type ErrorCode } from '../../../daemon/errors.ts'
import { StorageError } from '../../../daemon/storage/errors.ts'
import { scanErrorCodes, where } from '../../helpers/error-code-scan.ts'

/**
 * Every error code the product writes is in ERROR_CODES (daemon/errors.ts), and the API's error
 * handler answers each with the status the table gives it (docs/api.md, Errors).
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const CODES = Object.keys(ERROR_CODES) as ErrorCode[]

/** Compile-time half (checked by `tsc`): a code outside the table does not compile. */
export function unknownCodesDoNotCompile(): unknown[] {
  return [
    // @ts-expect-error: not a code of ERROR_CODES
    new DaemonError('NOT_A_CODE', 'x'),
    // @ts-expect-error: not a code of ValidationErrorCode
    new ValidationError('NOT_A_CODE', 'x'),
    // @ts-expect-error: not a storage code
    new StorageError('BACKUP_CORRUPT', 'x'),
    // @ts-expect-error: MeshsyncError is only constructed through a subclass that types its codes
    new MeshsyncError('NOT_A_CODE', 'x'),
  ]
}

/** A subclass that passes a code outside the table (what the source scan exists to catch). */
class StrayCodeError extends MeshsyncError {
  constructor() {
    super('NOT_IN_THE_TABLE', 'a code nobody put in the table')
  }
}

describe('the error code table', () => {
  const scan = scanErrorCodes(ROOT)

  it('finds the codes written in crdt/, transport/ and daemon/', () => {
    const dirs = new Set(scan.sites.map((s) => s.file.split('/')[0]))
    expect([...dirs].sort()).toEqual(['crdt', 'daemon', 'transport'])
    // One code of each kind of site: new X(code), super(code) in a subclass, `code:` in a record.
    const found = new Set(scan.sites.map((s) => s.code))
    for (const code of ['TEXT_RANGE', 'STORAGE_FULL', 'BACKUP_CORRUPT', 'ENTITY_NOT_FOUND', 'SYNC_PROTOCOL', 'GC_HORIZON', 'CONFIG_INVALID', 'INVALID_ENCODING', 'BAD_REQUEST']) {
      expect(found, code).toContain(code)
    }
    expect(scan.errorClasses).toContain('BackupError')
    expect(scan.errorClasses).toContain('SyncProtocolError')
  })

  it('holds every code the product writes', () => {
    const missing = scan.sites.filter((s) => !isErrorCode(s.code)).map((s) => where(s, ROOT))
    expect(missing).toEqual([])
  })

  it('holds no code the product never writes', () => {
    const unused = CODES.filter((code) => !scan.literals.has(code))
    expect(unused).toEqual([])
  })

  it('gives each code an HTTP status or marks it as never an API response, and a meaning', () => {
    for (const code of CODES) {
      const { status, meaning } = ERROR_CODES[code]
      if (status !== null) expect(status >= 400 && status <= 599, code).toBe(true)
      expect(meaning.length, code).toBeGreaterThan(10)
    }
  })
})

describe('the API error handler', () => {
  let app: FastifyInstance | undefined
  const logged: { level: number; msg: string; code?: string }[] = []
  afterEach(async () => {
    await app?.close()
    app = undefined
    logged.length = 0
  })

  async function appThrowing(make: (code: string) => Error): Promise<FastifyInstance> {
    const logger = pino({ level: 'debug' }, { write: (line: string) => void logged.push(JSON.parse(line) as (typeof logged)[number]) })
    const a = Fastify({ loggerInstance: logger as FastifyBaseLogger })
    installErrorHandling(a)
    a.get<{ Params: { code: string } }>('/throw/:code', async (req) => {
      throw make(req.params.code)
    })
    a.post('/echo', async (req) => req.body)
    a.get('/limited', { schema: { querystring: { type: 'object', properties: { limit: { type: 'integer' } }, additionalProperties: false } } }, async () => ({}))
    await a.ready()
    return a
  }

  it("answers each code with its table status, and a code that is no API response with a logged 500 INTERNAL", async () => {
    app = await appThrowing((code) => new DaemonError(code as ErrorCode, `failed with ${code}`))
    for (const code of CODES) {
      const res = await app.inject({ method: 'GET', url: `/throw/${code}` })
      const { status } = ERROR_CODES[code]
      if (status === null) {
        expect({ code, status: res.statusCode, body: res.json() }).toEqual({ code, status: 500, body: { error: { code: 'INTERNAL', message: 'internal error' } } })
        expect(logged.some((l) => l.level === 50 && l.code === code), code).toBe(true)
      } else {
        expect({ code, status: res.statusCode, body: res.json() }).toEqual({ code, status, body: { error: { code, message: `failed with ${code}` } } })
      }
    }
  })

  it('answers a code outside the table with a logged 500 INTERNAL, not a guessed status', async () => {
    app = await appThrowing(() => new StrayCodeError())
    const res = await app.inject({ method: 'GET', url: '/throw/any' })
    expect(res.statusCode).toBe(500)
    expect(res.json()).toEqual({ error: { code: 'INTERNAL', message: 'internal error' } })
    expect(logged.find((l) => l.level === 50)?.code).toBe('NOT_IN_THE_TABLE')
  })

  it("maps fastify's own errors and unknown routes to codes of the table", async () => {
    app = await appThrowing(() => new Error('boom'))
    const cases = [
      { res: await app.inject({ method: 'GET', url: '/throw/x' }), code: 'INTERNAL' },
      { res: await app.inject({ method: 'GET', url: '/nowhere' }), code: 'ROUTE_NOT_FOUND' },
      { res: await app.inject({ method: 'GET', url: '/limited?limit=x' }), code: 'INVALID_QUERY' },
      { res: await app.inject({ method: 'POST', url: '/echo', headers: { 'content-type': 'application/json' }, payload: '{' }), code: 'INVALID_JSON' },
      { res: await app.inject({ method: 'POST', url: '/echo', headers: { 'content-type': 'application/xml' }, payload: '<a/>' }), code: 'UNSUPPORTED_MEDIA_TYPE' },
    ]
    for (const { res, code } of cases) {
      expect(res.json<{ error: { code: string } }>().error.code).toBe(code)
      expect(res.statusCode).toBe(ERROR_CODES[code as ErrorCode].status)
    }
  })
})
