import { readFileSync } from 'node:fs'
import type { HTTPMethods } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ERROR_CODES } from '../../../daemon/errors.ts'
import { inProcessApi } from '../../helpers/in-process-api.ts'

/**
 * docs/api.md is the API reference: every route of `/openapi.json` has a section there, every
 * route it documents exists, and its error table is ERROR_CODES (daemon/errors.ts), code for
 * code, with the same status and meaning.
 */

const DOC_URL = new URL('../../../docs/api.md', import.meta.url)

/** `### \`GET /v1/ns/:ns/entities\`` headings: the routes the doc documents, as `METHOD /path`. */
function documentedRoutes(doc: string): string[] {
  return [...doc.matchAll(/^### `([A-Z]+) (\/[^`\s]*)`$/gm)].map((m) => `${m[1]} ${m[2]}`)
}

/** The rows of the table under `## Errors`: code → status (null for `—`) and meaning. */
function documentedErrors(doc: string): Map<string, { status: number | null; meaning: string }> {
  const start = doc.indexOf('\n## Errors\n')
  if (start < 0) throw new Error('docs/api.md has no "## Errors" section')
  const end = doc.indexOf('\n## ', start + 1)
  const section = doc.slice(start, end < 0 ? undefined : end)
  const rows = new Map<string, { status: number | null; meaning: string }>()
  for (const m of section.matchAll(/^\| `([A-Z_]+)` \| (\d{3}|—) \| (.*) \|$/gm)) {
    const [, code, status, meaning] = m as unknown as [string, string, string, string]
    if (rows.has(code)) throw new Error(`docs/api.md lists ${code} twice`)
    rows.set(code, { status: status === '—' ? null : Number(status), meaning: meaning.replaceAll('\\|', '|') })
  }
  return rows
}

describe('docs/api.md', () => {
  const doc = readFileSync(DOC_URL, 'utf8')
  let api: Awaited<ReturnType<typeof inProcessApi>>
  let specRoutes: string[]
  beforeAll(async () => {
    api = await inProcessApi()
    const res = await api.app.inject({ method: 'GET', url: '/openapi.json' })
    expect(res.statusCode).toBe(200)
    const spec = res.json<{ paths: Record<string, Record<string, unknown>> }>()
    specRoutes = Object.entries(spec.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((method) => `${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`),
    )
  })
  afterAll(async () => api.close())

  it('documents every route of /openapi.json', () => {
    expect(specRoutes.length).toBeGreaterThan(15)
    const documented = new Set(documentedRoutes(doc))
    expect(specRoutes.filter((r) => !documented.has(r))).toEqual([])
  })

  it('documents only routes the daemon serves', () => {
    const documented = documentedRoutes(doc)
    expect(documented).toContain('WS /v1/yjs/:ns/:id')
    const missing = documented.filter((route) => {
      const [method, url] = route.split(' ') as [string, string]
      // A WebSocket route is a GET that upgrades.
      return !api.app.hasRoute({ method: (method === 'WS' ? 'GET' : method) as HTTPMethods, url })
    })
    expect(missing).toEqual([])
  })

  it('has the error table of daemon/errors.ts: every code, with its status and meaning', () => {
    const documented = documentedErrors(doc)
    const table = new Map(Object.entries(ERROR_CODES).map(([code, { status, meaning }]) => [code, { status, meaning }]))
    expect([...documented.keys()].filter((c) => !table.has(c))).toEqual([])
    expect([...table.keys()].filter((c) => !documented.has(c))).toEqual([])
    for (const [code, entry] of table) expect({ code, ...documented.get(code) }).toEqual({ code, ...entry })
  })
})
