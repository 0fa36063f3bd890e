import { readFile } from 'node:fs/promises'
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { DashboardSession } from './session.ts'

/** The dashboard's files, shipped in the package next to this module. */
const STATIC_DIR = new URL('./static/', import.meta.url)

/** URL path → file and content type. Nothing else is served from the directory. */
const ASSETS: Readonly<Record<string, { file: string; type: string }>> = {
  '/dashboard/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/dashboard/data.js': { file: 'data.js', type: 'text/javascript; charset=utf-8' },
  '/dashboard/dom.js': { file: 'dom.js', type: 'text/javascript; charset=utf-8' },
  '/dashboard/entity.js': { file: 'entity.js', type: 'text/javascript; charset=utf-8' },
  '/dashboard/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
}

/** Headers of every dashboard response: no framing, no inline code, no referrer (the login URL holds the token). */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
}

const UNAUTHORIZED_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>meshsync: sign in</title><link rel="icon" href="data:,"></head>
<body>
<h1>meshsync dashboard</h1>
<p>This page needs the node's API token. Open it once as
<code>/?token=&lt;contents of DATA_DIR/api-token&gt;</code> (<code>meshsync dashboard</code> prints that
URL); the browser then keeps a session cookie for this node.</p>
</body></html>
`

/** What {@link dashboardRoutes} needs. */
export interface DashboardRoutesOptions {
  /** The TCP listener's browser session; absent on the Unix socket (no token there). */
  readonly session?: DashboardSession
}

/**
 * The web dashboard: `GET /` (the page; `/?token=` opens a session and redirects to `/`) and its
 * scripts and stylesheet under `/dashboard/`. The page reads the same v1 API as any client.
 */
export function dashboardRoutes(app: FastifyInstance, options: DashboardRoutesOptions = {}): void {
  const { session } = options
  const files = new Map<string, Promise<Buffer>>()
  const load = (file: string): Promise<Buffer> => {
    let content = files.get(file)
    if (!content) {
      content = readFile(new URL(file, STATIC_DIR))
      content.catch(() => files.delete(file))
      files.set(file, content)
    }
    return content
  }
  const send = async (reply: FastifyReply, file: string, type: string): Promise<FastifyReply> =>
    reply.headers(SECURITY_HEADERS).type(type).send(await load(file))

  app.get('/', { schema: { hide: true } }, async (req, reply) => {
    if (new URL(req.url, 'http://x').searchParams.has('token')) {
      // Trade the token in the URL for a cookie and drop it from the address bar and history.
      if (session?.isLogin(req)) void reply.header('set-cookie', session.setCookie())
      return reply.headers(SECURITY_HEADERS).header('cache-control', 'no-store').redirect('/', 303)
    }
    return send(reply, 'index.html', 'text/html; charset=utf-8')
  })
  for (const [path, { file, type }] of Object.entries(ASSETS)) {
    app.get(path, { schema: { hide: true } }, async (_req, reply) => send(reply, file, type))
  }

  // A browser that opens `/` without a session gets a page saying how to sign in, not JSON.
  app.addHook('onSend', async (request, reply, payload) => {
    if (reply.statusCode !== 401 || request.url.split('?')[0] !== '/' || !(request.headers.accept ?? '').includes('text/html')) return payload
    void reply.headers(SECURITY_HEADERS).type('text/html; charset=utf-8')
    return UNAUTHORIZED_PAGE
  })
}
