// Helpers shared by the dashboard's modules: building elements (every value goes in as text or an
// attribute, never as HTML) and calling the daemon's v1 API with the session cookie.

/** Creates an element: `h('td', {class: 'num'}, 'text', child)`; strings become text nodes. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue
    if (k === 'class') el.className = v
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v)
    else el.setAttribute(k, v === true ? '' : String(v))
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue
    el.append(c instanceof Node ? c : String(c))
  }
  return el
}

export function short(id, n = 10) {
  return typeof id === 'string' && id.length > n + 2 ? `${id.slice(0, 4)}…${id.slice(-(n - 4))}` : String(id ?? '')
}

/** A value as one line of JSON, cut at 120 characters. */
export function json(v) {
  if (v === undefined) return '–'
  const s = JSON.stringify(v)
  return s.length > 120 ? `${s.slice(0, 117)}…` : s
}

/** An error answer of the API: `code` is the ERROR_CODES code (docs/api.md), the message says `CODE: message`. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(code ? `${code}: ${message}` : message)
    this.status = status
    this.code = code
  }
}

/** Calls the API; throws {@link ApiError} for an error status. */
export async function api(path, init = {}) {
  const res = await fetch(path, { credentials: 'same-origin', cache: 'no-store', ...init, headers: { accept: 'application/json', ...init.headers } })
  const body = await res.json().catch(() => undefined)
  if (res.status === 401) throw new ApiError(401, 'UNAUTHORIZED', 'not signed in: open this page as /?token=<api-token> (meshsync dashboard prints the URL)')
  if (!res.ok) throw body?.error ? new ApiError(res.status, body.error.code, body.error.message) : new ApiError(res.status, undefined, `HTTP ${res.status}`)
  return body
}

/** A JSON request body for {@link api}. */
export function jsonBody(method, body) {
  return { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }
}

/** The path of an entity (or of one of its sub-resources) with each segment percent-encoded. */
export function entityPath(ns, id, ...rest) {
  return ['/v1/ns', ns, 'entities', id, ...rest].map((s, i) => (i === 0 ? s : encodeURIComponent(s))).join('/')
}

export function errorText(error) {
  return error instanceof Error ? error.message : String(error)
}
