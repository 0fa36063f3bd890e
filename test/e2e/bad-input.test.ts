import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openSse, startDaemon, stopAllDaemons, writeConfig, type ApiCall, type ApiResponse, type DaemonHandle, type RequestHeaders } from '../helpers/daemon-process.ts'
import { useTempDirs } from '../helpers/temp-dir.ts'

/**
 * docs/api.md (Errors): bad input gets a 4xx with a code, nothing is written, and the daemon is unharmed.
 * Every case runs over TCP (with the token) and over the Unix socket; codes, never messages.
 */

const BODY_LIMIT = 65_536
const NS = 'bad'

interface Case {
  readonly name: string
  readonly status: number
  readonly code: string
  readonly send: (call: ApiCall, daemon: DaemonHandle) => Promise<ApiResponse>
  /** Only over this transport. */
  readonly only?: 'tcp' | 'sock'
}

const json = (value: unknown): string => JSON.stringify(value)
const put = (id: string, body: unknown, headers?: RequestHeaders) => (call: ApiCall) =>
  call('PUT', `/v1/ns/${NS}/entities/${id}`, body as string, headers)
const batch = (body: unknown) => (call: ApiCall) => call('POST', '/v1/batch', body as string)
const splice = (ops: unknown, name = 'body') => (call: ApiCall) => call('POST', `/v1/ns/${NS}/entities/seed/text/${name}`, { ops })
const get = (path: string, headers?: RequestHeaders) => (call: ApiCall) => call('GET', path, undefined, headers)

const big = (bytes: number): { blob: string } => ({ blob: 'x'.repeat(bytes) })
const longId = 'i'.repeat(257)
/** `{v: [[...[]...]]}` with `levels` arrays under the record (the record is level 1). */
const nested = (levels: number): { v: unknown } => {
  let v: unknown = []
  for (let i = 1; i < levels; i++) v = [v]
  return { v }
}
const longNs = 'n'.repeat(65)

const cases: Case[] = [
  // malformed JSON
  { name: 'PUT malformed JSON', status: 400, code: 'INVALID_JSON', send: put('a', '{"a":') },
  { name: 'PATCH malformed JSON', status: 400, code: 'INVALID_JSON', send: (c) => c('PATCH', `/v1/ns/${NS}/entities/seed`, '{a: 1}') },
  { name: 'batch malformed JSON', status: 400, code: 'INVALID_JSON', send: batch('{"ops": [') },
  { name: 'text malformed JSON', status: 400, code: 'INVALID_JSON', send: (c) => c('POST', `/v1/ns/${NS}/entities/seed/text/body`, '{"ops": [[0, 0, "x"]') },
  { name: 'PUT empty JSON body', status: 400, code: 'INVALID_JSON', send: put('a', '') },
  { name: 'PUT JSON with trailing garbage', status: 400, code: 'INVALID_JSON', send: put('a', '{"a": 1} x') },
  { name: 'PUT __proto__ key', status: 400, code: 'INVALID_JSON', send: put('a', '{"__proto__": {"polluted": true}}') },

  // wrong types
  { name: 'PUT body is an array', status: 400, code: 'INVALID_BODY', send: put('a', json([1, 2])) },
  { name: 'PUT body is a string', status: 400, code: 'INVALID_BODY', send: put('a', json('str')) },
  { name: 'PUT body is a number', status: 400, code: 'INVALID_BODY', send: put('a', '42') },
  { name: 'PUT body is null', status: 400, code: 'INVALID_BODY', send: put('a', 'null') },
  { name: 'PATCH body is an array', status: 400, code: 'INVALID_BODY', send: (c) => c('PATCH', `/v1/ns/${NS}/entities/seed`, json([{ a: 1 }])) },
  { name: 'batch body is an array', status: 400, code: 'INVALID_BODY', send: batch(json([{ op: 'put', ns: NS, id: 'a', value: {} }])) },
  { name: 'batch ops is not an array', status: 400, code: 'INVALID_BODY', send: batch(json({ ops: { op: 'put', ns: NS, id: 'a', value: {} } })) },
  { name: 'batch ops is empty', status: 400, code: 'INVALID_BODY', send: batch(json({ ops: [] })) },
  { name: 'batch op value is a string', status: 400, code: 'INVALID_BODY', send: batch(json({ ops: [{ op: 'put', ns: NS, id: 'a', value: 'str' }] })) },
  { name: 'batch op value is an array', status: 400, code: 'INVALID_BODY', send: batch(json({ ops: [{ op: 'patch', ns: NS, id: 'a', value: [1] }] })) },
  { name: 'batch op id is a number', status: 400, code: 'INVALID_BODY', send: batch(json({ ops: [{ op: 'put', ns: NS, id: 7, value: {} }] })) },
  { name: 'batch op without id', status: 400, code: 'INVALID_BODY', send: batch(json({ ops: [{ op: 'put', ns: NS, value: {} }] })) },
  { name: 'batch put without value', status: 400, code: 'INVALID_BODY', send: batch(json({ ops: [{ op: 'put', ns: NS, id: 'a' }] })) },
  { name: 'batch delete with a value', status: 400, code: 'INVALID_BODY', send: batch(json({ ops: [{ op: 'delete', ns: NS, id: 'seed', value: {} }] })) },
  { name: 'PUT record nested 5000 deep', status: 400, code: 'INVALID_RECORD', send: put('a', `{"a":${'['.repeat(5000)}${']'.repeat(5000)}}`) },
  { name: 'batch value nested 101 deep', status: 400, code: 'INVALID_RECORD', send: batch({ ops: [{ op: 'put', ns: NS, id: 'a', value: nested(100) }] }) },
  { name: 'PATCH with a number JSON cannot carry (1e400)', status: 400, code: 'INVALID_RECORD', send: (c) => c('PATCH', `/v1/ns/${NS}/entities/seed`, '{"n": 1e400}') },
  { name: 'PUT with a lone surrogate in a value', status: 400, code: 'INVALID_RECORD', send: put('a', '{"a": "\\ud800"}') },
  { name: 'PUT with a lone surrogate in a key', status: 400, code: 'INVALID_RECORD', send: put('a', '{"\\udc00": 1}') },
  { name: 'text insert with a lone surrogate', status: 400, code: 'INVALID_TEXT', send: (c) => c('POST', `/v1/ns/${NS}/entities/seed/text/body`, '{"ops": [[0, 0, "\\ud800"]]}') },
  { name: 'text ops are not triples', status: 400, code: 'INVALID_BODY', send: splice([[0, 'x']]) },
  { name: 'text position is negative', status: 400, code: 'INVALID_BODY', send: splice([[-1, 0, 'x']]) },
  { name: 'text insert is a number', status: 400, code: 'INVALID_BODY', send: splice([[0, 0, 5]]) },
  { name: 'text position is fractional', status: 400, code: 'INVALID_BODY', send: splice([[0.5, 0, 'x']]) },

  // unknown fields, unknown ops
  { name: 'batch op with an unknown field', status: 400, code: 'INVALID_BODY', send: batch(json({ ops: [{ op: 'put', ns: NS, id: 'a', value: {}, extra: 1 }] })) },
  { name: 'batch with an unknown top-level field', status: 400, code: 'INVALID_BODY', send: batch(json({ ops: [{ op: 'put', ns: NS, id: 'a', value: {} }], atomic: false })) },
  { name: 'text body with an unknown field', status: 400, code: 'INVALID_BODY', send: (c) => c('POST', `/v1/ns/${NS}/entities/seed/text/body`, { ops: [[0, 0, 'x']], x: 1 }) },
  { name: 'batch op "upsert"', status: 400, code: 'INVALID_BODY', send: batch(json({ ops: [{ op: 'upsert', ns: NS, id: 'a', value: {} }] })) },
  { name: 'batch op "text"', status: 400, code: 'INVALID_BODY', send: batch(json({ ops: [{ op: 'text', ns: NS, id: 'a', value: {} }] })) },
  { name: 'batch op is missing', status: 400, code: 'INVALID_BODY', send: batch(json({ ops: [{ ns: NS, id: 'a', value: {} }] })) },

  // size
  { name: 'PUT body over the limit', status: 413, code: 'PAYLOAD_TOO_LARGE', send: put('a', big(100 * 1024)) },
  { name: 'PATCH body over the limit', status: 413, code: 'PAYLOAD_TOO_LARGE', send: (c) => c('PATCH', `/v1/ns/${NS}/entities/seed`, big(100 * 1024)) },
  {
    name: 'batch body over the limit',
    status: 413,
    code: 'PAYLOAD_TOO_LARGE',
    send: batch({ ops: Array.from({ length: 20 }, (_, i) => ({ op: 'put', ns: NS, id: `big${i}`, value: big(5 * 1024) })) }),
  },
  { name: 'text body over the limit', status: 413, code: 'PAYLOAD_TOO_LARGE', send: splice([[0, 0, 'y'.repeat(100 * 1024)]]) },

  // names
  { name: 'PUT namespace Bad!NS', status: 400, code: 'INVALID_NAMESPACE', send: (c) => c('PUT', '/v1/ns/Bad!NS/entities/a', {}) },
  { name: 'PUT namespace of 65 chars', status: 400, code: 'INVALID_NAMESPACE', send: (c) => c('PUT', `/v1/ns/${longNs}/entities/a`, {}) },
  { name: 'PUT namespace starting with a dot', status: 400, code: 'INVALID_NAMESPACE', send: (c) => c('PUT', '/v1/ns/.hidden/entities/a', {}) },
  { name: 'GET namespace in upper case', status: 400, code: 'INVALID_NAMESPACE', send: get('/v1/ns/BAD/entities/a') },
  { name: 'list of a bad namespace', status: 400, code: 'INVALID_NAMESPACE', send: get('/v1/ns/Bad!NS/entities') },
  { name: 'changes of a bad namespace', status: 400, code: 'INVALID_NAMESPACE', send: get(`/v1/ns/${longNs}/changes`) },
  { name: 'batch op with a bad namespace', status: 400, code: 'INVALID_NAMESPACE', send: batch(json({ ops: [{ op: 'put', ns: 'Bad!NS', id: 'a', value: {} }] })) },
  { name: 'PUT id of 257 chars', status: 400, code: 'INVALID_ID', send: put(longId, {}) },
  { name: 'GET id of 257 chars', status: 400, code: 'INVALID_ID', send: get(`/v1/ns/${NS}/entities/${longId}`) },
  { name: 'PUT id with a control char (%01)', status: 400, code: 'INVALID_ID', send: put('a%01b', {}) },
  { name: 'PUT id with DEL (%7F)', status: 400, code: 'INVALID_ID', send: put('a%7Fb', {}) },
  { name: 'PUT id with a slash (%2F)', status: 400, code: 'INVALID_ID', send: put('a%2Fb', {}) },
  { name: 'DELETE id with a control char', status: 400, code: 'INVALID_ID', send: (c) => c('DELETE', `/v1/ns/${NS}/entities/%0A`) },
  { name: 'batch op with an id of 257 chars', status: 400, code: 'INVALID_ID', send: batch(json({ ops: [{ op: 'put', ns: NS, id: longId, value: {} }] })) },
  { name: 'batch op with an empty id', status: 400, code: 'INVALID_ID', send: batch(json({ ops: [{ op: 'put', ns: NS, id: '', value: {} }] })) },
  { name: 'PUT id with broken percent-encoding', status: 400, code: 'INVALID_URL', send: put('a%E0%A4%A', {}) },
  { name: 'GET path segment of 2000 chars', status: 414, code: 'URI_TOO_LONG', send: get(`/v1/ns/${NS}/entities/${'z'.repeat(2000)}`) },
  { name: 'text name not a valid name', status: 400, code: 'INVALID_TEXT_NAME', send: splice([[0, 0, 'x']], 'Body!') },
  {
    name: 'batch: valid op, then a bad namespace (nothing written)',
    status: 400,
    code: 'INVALID_NAMESPACE',
    send: batch(json({ ops: [{ op: 'put', ns: NS, id: 'a', value: { ok: true } }, { op: 'put', ns: 'NO', id: 'a', value: {} }] })),
  },

  // text ranges (the seed's text is "hello", 5 UTF-16 units)
  { name: 'text splice past the end', status: 400, code: 'TEXT_RANGE', send: splice([[6, 0, 'x']]) },
  { name: 'text delete past the end', status: 400, code: 'TEXT_RANGE', send: splice([[3, 3, '']]) },
  { name: 'text: valid splice, then one out of range', status: 400, code: 'TEXT_RANGE', send: splice([[0, 5, 'hi'], [3, 0, 'x']]) },
  {
    name: 'text splice on a missing entity past 0',
    status: 400,
    code: 'TEXT_RANGE',
    send: (c) => c('POST', `/v1/ns/${NS}/entities/nothing-here/text/body`, { ops: [[1, 0, 'x']] }),
  },

  // cursors and limits
  { name: 'changes since=abc', status: 400, code: 'INVALID_CURSOR', send: get(`/v1/ns/${NS}/changes?since=abc`) },
  { name: 'changes since=-1', status: 400, code: 'INVALID_CURSOR', send: get(`/v1/ns/${NS}/changes?since=-1`) },
  { name: 'changes since beyond the feed', status: 400, code: 'INVALID_CURSOR', send: get(`/v1/ns/${NS}/changes?since=999999999`) },
  { name: 'SSE with a bad Last-Event-ID', status: 400, code: 'INVALID_CURSOR', send: get(`/v1/ns/${NS}/changes`, { accept: 'text/event-stream', 'last-event-id': 'x1' }) },
  { name: 'history after=abc', status: 400, code: 'INVALID_CURSOR', send: get(`/v1/ns/${NS}/entities/seed/history?after=abc`) },
  { name: 'history limit=0', status: 400, code: 'INVALID_QUERY', send: get(`/v1/ns/${NS}/entities/seed/history?limit=0`) },
  { name: 'history with an unknown parameter', status: 400, code: 'INVALID_QUERY', send: get(`/v1/ns/${NS}/entities/seed/history?since=1`) },
  { name: 'history of an entity never here', status: 404, code: 'ENTITY_NOT_FOUND', send: get(`/v1/ns/${NS}/entities/nothing-here/history`) },
  { name: 'history of a bad id', status: 400, code: 'INVALID_ID', send: get(`/v1/ns/${NS}/entities/${longId}/history`) },

  // reads at a backup (docs/backups.md, Reading a backup without restoring)
  { name: 'GET with target but no at', status: 400, code: 'INVALID_QUERY', send: get(`/v1/ns/${NS}/entities/seed?target=/tmp`) },
  { name: 'GET at a backup with no target configured', status: 400, code: 'NO_BACKUP_TARGET', send: get(`/v1/ns/${NS}/entities/seed?at=latest`) },
  { name: 'GET at a backup in a relative path', status: 400, code: 'INVALID_TARGET', send: get(`/v1/ns/${NS}/entities/seed?at=latest&target=repo`) },
  { name: 'GET at a time that is not one', status: 400, code: 'INVALID_QUERY', send: get(`/v1/ns/${NS}/entities/seed?at=2026-99-99T00:00:00Z&target=/tmp`) },
  { name: 'GET at a backup with an empty passphrase', status: 400, code: 'PASSPHRASE_REQUIRED', send: get(`/v1/ns/${NS}/entities/seed?at=latest&target=/tmp`, { 'x-backup-passphrase': '' }) },
  { name: 'list at a backup with an unknown parameter', status: 400, code: 'INVALID_QUERY', send: get(`/v1/ns/${NS}/entities?at=latest&passphrase=x`) },
  { name: 'list limit=0', status: 400, code: 'INVALID_QUERY', send: get(`/v1/ns/${NS}/entities?limit=0`) },
  { name: 'list limit=1001', status: 400, code: 'INVALID_QUERY', send: get(`/v1/ns/${NS}/entities?limit=1001`) },
  { name: 'list limit=-5', status: 400, code: 'INVALID_QUERY', send: get(`/v1/ns/${NS}/entities?limit=-5`) },
  { name: 'list limit=ten', status: 400, code: 'INVALID_QUERY', send: get(`/v1/ns/${NS}/entities?limit=ten`) },
  { name: 'list with an unknown parameter', status: 400, code: 'INVALID_QUERY', send: get(`/v1/ns/${NS}/entities?sort=desc`) },
  { name: 'changes limit=0', status: 400, code: 'INVALID_QUERY', send: get(`/v1/ns/${NS}/changes?limit=0`) },
  { name: 'changes limit=10001', status: 400, code: 'INVALID_QUERY', send: get(`/v1/ns/${NS}/changes?limit=10001`) },

  // content types
  { name: 'PUT as text/plain', status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', send: put('a', '{"a": 1}', { 'content-type': 'text/plain' }) },
  { name: 'PUT as application/xml', status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', send: put('a', '<a>1</a>', { 'content-type': 'application/xml' }) },
  {
    name: 'batch as form data',
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
    send: (c) => c('POST', '/v1/batch', 'ops=1', { 'content-type': 'application/x-www-form-urlencoded' }),
  },
  { name: 'PUT with a body and no content type', status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', send: put('a', '{"a": 1}', { 'content-type': undefined }) },
  { name: 'PATCH as text/plain', status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', send: (c) => c('PATCH', `/v1/ns/${NS}/entities/seed`, '{}', { 'content-type': 'text/plain' }) },

  // a known path with another method (docs/api.md, Errors)
  { name: 'DELETE /v1/status', status: 405, code: 'METHOD_NOT_ALLOWED', send: (c) => c('DELETE', '/v1/status') },
  { name: 'PUT /v1/batch', status: 405, code: 'METHOD_NOT_ALLOWED', send: (c) => c('PUT', '/v1/batch', { ops: [] }) },
  { name: 'POST to an entity', status: 405, code: 'METHOD_NOT_ALLOWED', send: (c) => c('POST', `/v1/ns/${NS}/entities/seed`, { n: 1 }) },
  { name: 'GET a path no route has', status: 404, code: 'ROUTE_NOT_FOUND', send: get('/v1/nothing') },

  // backup targets, refused at once before anything queues (docs/api.md, Long operations)
  { name: 'backup into /proc/self', status: 400, code: 'INVALID_TARGET', send: (c) => c('POST', '/v1/backups', { type: 'full', target: '/proc/self' }) },
  { name: 'backup under /proc/self', status: 400, code: 'INVALID_TARGET', send: (c) => c('POST', '/v1/backups', { type: 'full', target: '/proc/self/meshsync/repo' }) },
  { name: 'backup into a relative path', status: 400, code: 'INVALID_TARGET', send: (c) => c('POST', '/v1/backups', { type: 'full', target: 'backups/here' }) },
  { name: 'list a relative path', status: 400, code: 'INVALID_TARGET', send: get('/v1/backups?target=backups') },
  { name: 'verify in a relative path', status: 400, code: 'INVALID_TARGET', send: (c) => c('POST', '/v1/backups/latest/verify', { target: './repo' }) },
  { name: 'restore from a relative path', status: 400, code: 'INVALID_TARGET', send: (c) => c('POST', '/v1/restore', { backup: 'latest', target: 'repo' }) },
  { name: 'restore into a relative data dir', status: 400, code: 'INVALID_TARGET', send: (c) => c('POST', '/v1/restore', { backup: 'latest', target: '/tmp', into: 'node' }) },

  // authentication (the socket needs no token)
  { name: 'TCP without a token', status: 401, code: 'UNAUTHORIZED', only: 'tcp', send: put('a', { a: 1 }, { authorization: undefined }) },
  { name: 'TCP with a wrong token', status: 401, code: 'UNAUTHORIZED', only: 'tcp', send: put('a', { a: 1 }, { authorization: 'Bearer not-the-token' }) },
  { name: 'TCP with basic auth', status: 401, code: 'UNAUTHORIZED', only: 'tcp', send: (c, d) => c('GET', '/v1/status', undefined, { authorization: `Basic ${d.token}` }) },
  { name: 'TCP GET without a token', status: 401, code: 'UNAUTHORIZED', only: 'tcp', send: get(`/v1/ns/${NS}/entities/seed`, { authorization: undefined }) },
]


describe('bad input', () => {
  const tempDir = useTempDirs('all')
  let daemon: DaemonHandle
  let valid = 0

  beforeAll(async () => {
    const dataDir = await tempDir('meshsync-bad-')
    await writeConfig(dataDir, { api: { bodyLimit: BODY_LIMIT } })
    daemon = await startDaemon({ dataDir })
    expect((await daemon.sock('PUT', `/v1/ns/${NS}/entities/seed`, { n: 0 })).status).toBe(200)
    expect((await daemon.sock('POST', `/v1/ns/${NS}/entities/seed/text/body`, { ops: [[0, 0, 'hello']] })).status).toBe(200)
  })

  afterAll(async () => {
    const exit = daemon ? await daemon.stop() : undefined
    await stopAllDaemons()
    // The daemon never logged an error (a 500 would), and shut down cleanly.
    expect(daemon?.stderr() ?? '').not.toMatch(/"level":(50|60)/)
    expect(exit).toEqual({ code: 0, signal: null })
  })

  async function snapshot(): Promise<{ versionVector: unknown; entities: number }> {
    const res = await daemon.sock<{ versionVector: unknown; entities: number }>('GET', '/v1/status')
    expect(res.status).toBe(200)
    return { versionVector: res.json.versionVector, entities: res.json.entities }
  }

  describe.each(['tcp', 'sock'] as const)('over %s', (via) => {
    const mine = cases.filter((c) => c.only === undefined || c.only === via)

    it.each(mine.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
      const call = daemon[via]
      const before = await snapshot()
      const res = await c.send(call, daemon)
      expect({ status: res.status, code: (res.json as { error?: { code?: string } } | undefined)?.error?.code }).toEqual({ status: c.status, code: c.code })
      expect(typeof (res.json as { error: { message?: unknown } }).error.message).toBe('string')
      // Nothing written.
      expect(await snapshot()).toEqual(before)
      // The next valid request succeeds, on the same transport.
      const next = await call<{ value: unknown }>('PUT', `/v1/ns/${NS}/entities/valid-${via}`, { n: ++valid })
      expect(next.status).toBe(200)
      expect(next.json.value).toEqual({ n: valid })
      const seed = await call<{ value: unknown }>('GET', `/v1/ns/${NS}/entities/seed`)
      expect(seed.status).toBe(200)
      expect(seed.json.value).toEqual({ n: 0 })
    })
  })

  it('left the seed text and the namespace as they were', async () => {
    const text = await daemon.sock<{ text: string }>('GET', `/v1/ns/${NS}/entities/seed/text/body`)
    expect(text.json.text).toBe('hello')
    const list = await daemon.sock<{ items: { id: string }[] }>('GET', `/v1/ns/${NS}/entities?limit=1000`)
    expect(list.json.items.map((i) => i.id).sort()).toEqual(['seed', 'valid-sock', 'valid-tcp'])
  })

  it('takes a record nested exactly 100 levels deep', async () => {
    const res = await daemon.sock<{ value: unknown }>('PUT', `/v1/ns/${NS}/entities/deep`, nested(99))
    expect(res.status).toBe(200)
    expect(res.json.value).toEqual(nested(99))
    expect((await daemon.sock('DELETE', `/v1/ns/${NS}/entities/deep`)).status).toBe(200)
  })

  it('a refused record never fails the writes committed with it', async () => {
    const valid = Array.from({ length: 32 }, (_, i) => daemon.sock('PUT', `/v1/ns/${NS}/entities/group-${i}`, { i }))
    const bad = [daemon.sock('PUT', `/v1/ns/${NS}/entities/group-bad`, `{"a":${'['.repeat(5000)}${']'.repeat(5000)}}`), daemon.tcp('PATCH', `/v1/ns/${NS}/entities/seed`, '{"n": 1e400}')]
    const results = await Promise.all([...valid, ...bad])
    expect(results.slice(0, 32).map((r) => r.status)).toEqual(Array(32).fill(200))
    expect(results.slice(32).map((r) => (r.json as { error: { code: string } }).error.code)).toEqual(['INVALID_RECORD', 'INVALID_RECORD'])
    for (let i = 0; i < 32; i++) await daemon.sock('DELETE', `/v1/ns/${NS}/entities/group-${i}`)
  })

  it('405 names the methods a path takes in Allow', async () => {
    for (const via of ['tcp', 'sock'] as const) {
      const res = await daemon[via]<{ error: { message: string } }>('DELETE', '/v1/status')
      expect(res.status).toBe(405)
      expect(res.headers.allow?.split(', ')).toContain('GET')
      expect(res.headers.allow).not.toContain('DELETE')
      const entity = await daemon[via]('POST', `/v1/ns/${NS}/entities/seed`, { n: 1 })
      expect(entity.headers.allow?.split(', ').sort()).toEqual(expect.arrayContaining(['DELETE', 'GET', 'PATCH', 'PUT']))
    }
  })

  it('a refused /proc/self backup leaves the node free: the next backup request is not kept waiting', async () => {
    const refused = await daemon.sock<{ error: { code: string } }>('POST', '/v1/backups', { type: 'full', target: '/proc/self' })
    expect(refused.json.error.code).toBe('INVALID_TARGET')
    const repo = await tempDir('meshsync-bad-repo-')
    const created = await daemon.sock<{ entities: number }>('POST', '/v1/backups', { type: 'full', target: repo })
    expect(created.status).toBe(201)
    const status = await daemon.sock<{ backups: { running: boolean; operation: unknown } }>('GET', '/v1/status')
    expect(status.json.backups).toMatchObject({ running: false, operation: null })
  })

  it('streams nothing for a bad SSE request and keeps serving', async () => {
    const sse = await openSse(daemon, `/v1/ns/${NS}/changes?since=zz`)
    expect(sse.status).toBe(400)
    sse.close()
    expect((await daemon.tcp('GET', '/v1/health', undefined, { authorization: undefined })).status).toBe(200)
  })
})
