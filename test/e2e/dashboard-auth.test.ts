import { spawnSync } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { meshsyncBin, startDaemon, stopAllDaemons, type DaemonHandle } from '../helpers/daemon-process.ts'
import { removeTempDirs } from '../helpers/temp-dir.ts'

/** The dashboard's sign-in (`/?token=` → cookie) and what the cookie may and may not do. */

let d: DaemonHandle
let cookie: string

beforeAll(async () => {
  d = await startDaemon()
})

afterAll(async () => {
  await stopAllDaemons()
  await removeTempDirs()
})

function get(path: string, headers: Record<string, string> = {}, method = 'GET', body?: string): Promise<Response> {
  return fetch(`${d.info.api.url}${path}`, { method, headers, redirect: 'manual', ...(body !== undefined && { body }) })
}

describe('dashboard sign-in', () => {
  it('refuses the page without a token, with a page that says how to sign in', async () => {
    const res = await get('/', { accept: 'text/html' })
    expect(res.status).toBe(401)
    expect(res.headers.get('content-type')).toMatch(/text\/html/)
    expect(await res.text()).toContain('/?token=')
    const json = await get('/')
    expect(json.status).toBe(401)
    expect(((await json.json()) as { error: { code: string } }).error.code).toBe('UNAUTHORIZED')
    expect((await get('/?token=wrong')).status).toBe(401)
    expect((await get('/dashboard/app.js')).status).toBe(401)
  })

  it('trades /?token= for an HttpOnly SameSite=Strict cookie and a redirect that drops the token', async () => {
    const res = await get(`/?token=${encodeURIComponent(d.token)}`)
    expect(res.status).toBe(303)
    expect(res.headers.get('location')).toBe('/')
    expect(res.headers.get('referrer-policy')).toBe('no-referrer')
    const setCookie = res.headers.get('set-cookie') ?? ''
    expect(setCookie).toMatch(new RegExp(`^meshsync_${d.info.nodeId}=`))
    expect(setCookie).toMatch(/HttpOnly/)
    expect(setCookie).toMatch(/SameSite=Strict/)
    expect(setCookie).not.toContain(d.token)
    cookie = setCookie.split(';')[0] as string
  })

  it('serves the page, its assets and the API to the cookie', async () => {
    const page = await get('/', { cookie })
    expect(page.status).toBe(200)
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'")
    expect(await page.text()).toContain('/dashboard/app.js')
    const js = await get('/dashboard/app.js', { cookie })
    expect(js.status).toBe(200)
    expect(js.headers.get('content-type')).toMatch(/javascript/)
    expect((await get('/dashboard/style.css', { cookie })).status).toBe(200)
    for (const module of ['dom.js', 'data.js', 'entity.js']) {
      const res = await get(`/dashboard/${module}`, { cookie })
      expect(res.status).toBe(200)
      expect(res.headers.get('content-type')).toMatch(/javascript/)
    }
    const status = await get('/v1/status', { cookie, 'sec-fetch-site': 'same-origin' })
    expect(status.status).toBe(200)
    expect(((await status.json()) as { nodeId: string }).nodeId).toBe(d.info.nodeId)
    const host = new URL(d.info.api.url).host
    const write = await get('/v1/ns/dash/entities/a', { cookie, origin: `http://${host}`, 'content-type': 'application/json' }, 'PUT', '{"x":1}')
    expect(write.status).toBe(200)
  })

  it('honours the cookie only for same-origin requests', async () => {
    const host = new URL(d.info.api.url)
    const otherPort = `http://${host.hostname}:${Number(host.port) === 65535 ? 1 : Number(host.port) + 1}`
    expect((await get('/v1/status', { cookie, origin: otherPort })).status).toBe(401)
    expect((await get('/v1/status', { cookie, 'sec-fetch-site': 'same-site' })).status).toBe(401)
    expect((await get('/v1/status', { cookie, 'sec-fetch-site': 'cross-site' })).status).toBe(401)
    // A write needs a matching Origin (browsers always send one on POST/PUT).
    const noOrigin = await get('/v1/ns/dash/entities/b', { cookie, 'content-type': 'application/json' }, 'PUT', '{"x":1}')
    expect(noOrigin.status).toBe(401)
    const foreign = await get('/v1/ns/dash/entities/b', { cookie, origin: otherPort, 'content-type': 'application/json' }, 'PUT', '{"x":1}')
    expect(foreign.status).toBe(401)
    expect((await get('/v1/status', { cookie: `meshsync_${d.info.nodeId}=forged` })).status).toBe(401)
  })

  it('`meshsync dashboard` prints the sign-in URL of the running node', () => {
    const run = spawnSync(process.execPath, [meshsyncBin, 'dashboard', '--data-dir', d.dataDir], { encoding: 'utf8' })
    expect(run.status).toBe(0)
    expect(run.stdout.trim()).toBe(`${d.info.api.url}/?token=${encodeURIComponent(d.token)}`)
  })

  it('keeps the bearer token working, and serves the page on the Unix socket without one', async () => {
    const page = await get('/', { authorization: `Bearer ${d.token}` })
    expect(page.status).toBe(200)
    expect((await d.tcp('GET', '/v1/status')).status).toBe(200)
    const sock = await d.sock('GET', '/')
    expect(sock.status).toBe(200)
    expect(sock.text).toContain('<title>meshsync</title>')
  })
})
