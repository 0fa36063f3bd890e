import { createHmac, timingSafeEqual } from 'node:crypto'
import type { FastifyRequest } from 'fastify'

/** Methods a cookie may authorize without a matching `Origin` header. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

/** How long a dashboard session cookie lives (the browser forgets it after this). */
const SESSION_MAX_AGE_S = 30 * 24 * 3600

/**
 * The dashboard's browser session on the TCP listener. A browser cannot set `Authorization` on a
 * navigation, so the dashboard is opened once as `/?token=<api-token>`; the daemon answers with an
 * HttpOnly, SameSite=Strict cookie and a redirect to `/`, and from then on the cookie authorizes
 * the dashboard and the API calls it makes.
 *
 * - The cookie holds an HMAC of the API token, not the token itself, and is named after the node
 *   (several daemons on one host, as in the demo, each keep their own cookie). Rotating
 *   `api-token` invalidates every session.
 * - Cookies are not isolated by port, and SameSite treats every port of a host as the same site,
 *   so the cookie is only honoured for same-origin requests: a request whose `Origin` names
 *   another origin, or whose `Sec-Fetch-Site` is neither `same-origin` nor `none`, is refused;
 *   a state-changing request (anything but GET/HEAD/OPTIONS) must carry a matching `Origin`
 *   (browsers always send one). This also covers WebSocket upgrades from other pages.
 */
export class DashboardSession {
  /** Name of the session cookie. */
  readonly cookieName: string
  readonly #token: Buffer
  readonly #value: Buffer

  constructor(token: string, nodeId: string) {
    this.cookieName = `meshsync_${nodeId.replace(/[^A-Za-z0-9_]/g, '')}`
    this.#token = Buffer.from(token)
    this.#value = Buffer.from(createHmac('sha256', token).update('meshsync dashboard session v1').digest('base64url'))
  }

  /** True when the request is a dashboard login (`/?token=` with the right token). */
  isLogin(request: FastifyRequest): boolean {
    const url = new URL(request.url, 'http://x')
    if (url.pathname !== '/') return false
    const given = url.searchParams.get('token')
    return given !== null && equal(Buffer.from(given), this.#token)
  }

  /** True when the request carries this node's session cookie and comes from the dashboard's own origin. */
  authorizes(request: FastifyRequest): boolean {
    const value = readCookie(request.headers.cookie, this.cookieName)
    if (value === undefined || !equal(Buffer.from(value), this.#value)) return false
    return sameOrigin(request)
  }

  /** The `Set-Cookie` header that opens a session. */
  setCookie(): string {
    return `${this.cookieName}=${this.#value.toString()}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_MAX_AGE_S}`
  }
}

/**
 * Whether a cookie-carrying request may be trusted as coming from the dashboard page itself.
 * `Sec-Fetch-Site` (sent by current browsers) must be `same-origin` or `none` (typed URL); an
 * `Origin`, when present, must name this host; state-changing methods need that `Origin`.
 */
function sameOrigin(request: FastifyRequest): boolean {
  const site = request.headers['sec-fetch-site']
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return false
  const origin = request.headers.origin
  if (origin === undefined) return SAFE_METHODS.has(request.method)
  try {
    return new URL(origin).host === request.headers.host
  } catch {
    return false
  }
}

function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}

function equal(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b)
}
