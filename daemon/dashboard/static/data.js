// The dashboard's Data tab (docs/operations.md): pick a namespace, query it (POST /v1/ns/:ns/query,
// docs/queries.md) with a where, sort and limit typed as JSON or built by clicking values, and page
// through the answer with its `next` cursor; an id opens the entity (entity.js). Every value from
// the API goes in as text.

import { api, errorText, h, json, jsonBody } from './dom.js'
import { configureEntityView, openEntity, openEntityKey } from './entity.js'

/** Most value fields shown as columns of the results (the entity view shows them all). */
const MAX_COLUMNS = 12
/** Record fields reached under `value.` in a query (docs/queries.md, Fields). */
const META_PATHS = new Set(['id', 'updatedAt', 'value'])

const $ = (id) => document.getElementById(id)

/** The query as last run ({ns, body}), the cursor of each page seen, and the page shown. */
const q = { namespaces: [], nodeId: null, shown: false, query: null, cursors: [undefined], page: 0, result: null, busy: false, seq: 0 }

/** Called on every status poll: the namespaces this node holds. */
export function syncDataNamespaces(namespaces, nodeId) {
  q.nodeId = nodeId
  if (JSON.stringify(namespaces) === JSON.stringify(q.namespaces)) return
  q.namespaces = namespaces
  const select = $('data-ns')
  const current = select.value
  select.replaceChildren(...namespaces.map((ns) => h('option', { value: ns }, ns)))
  if (namespaces.includes(current)) select.value = current
  if (q.shown && q.query === null && namespaces.length > 0) void runQuery()
}

/** Called when the Data tab opens. */
export function showDataTab() {
  q.shown = true
  if (q.query === null && q.namespaces.length > 0) void runQuery()
}

// ---- the query ----------------------------------------------------------------------------------

/** The query of the form; throws an Error saying which box is not valid JSON. */
function readForm() {
  const ns = $('data-ns').value
  if (!ns) throw new Error('no namespace on this node yet')
  const body = { limit: Number($('data-limit').value) || 20 }
  const where = parseBox('data-where', 'where')
  const sort = parseBox('data-sort', 'sort')
  const empty = where !== null && typeof where === 'object' && !Array.isArray(where) && Object.keys(where).length === 0
  if (where !== undefined && !empty) body.where = where
  if (sort !== undefined) body.sort = sort
  return { ns, body }
}

function parseBox(id, name) {
  const text = $(id).value.trim()
  if (text === '') return undefined
  try {
    return JSON.parse(text)
  } catch (error) {
    throw new Error(`${name} is not valid JSON: ${errorText(error)}`, { cause: error })
  }
}

/** Runs the query of the form from its first page. */
async function runQuery() {
  drawFilters()
  let query
  try {
    query = readForm()
  } catch (error) {
    q.seq++
    q.result = null
    showQueryError(errorText(error))
    drawResults()
    return
  }
  q.query = query
  q.cursors = [undefined]
  q.page = 0
  await loadPage()
}

/** Reads page `q.page` of the last query: its cursor is the `next` of the page before. */
async function loadPage() {
  const { ns, body } = q.query
  const cursor = q.cursors[q.page]
  const seq = ++q.seq
  q.busy = true
  drawPager()
  try {
    const result = await api(...request(ns, body, cursor))
    if (seq !== q.seq) return
    q.result = result
    q.cursors.length = q.page + 1
    if (result.next) q.cursors.push(result.next)
    showQueryError(null)
  } catch (error) {
    if (seq !== q.seq) return
    q.result = null
    const hint = error?.code === 'QUERY_NEEDS_INDEX' ? ' (add an index that serves it, or narrow the where: docs/queries.md)' : ''
    showQueryError(errorText(error) + hint)
  } finally {
    if (seq === q.seq) q.busy = false
  }
  drawResults()
}

/**
 * The API call of one page. Without a where or a sort it is the plain listing in id order
 * (GET /v1/ns/:ns/entities, paged with `after`), which any namespace answers, however large;
 * otherwise the query route, whose `next` goes back as `cursor` (docs/queries.md).
 */
function request(ns, body, cursor) {
  const base = `/v1/ns/${encodeURIComponent(ns)}`
  if (body.where === undefined && body.sort === undefined) {
    return [`${base}/entities?limit=${body.limit}${cursor === undefined ? '' : `&after=${encodeURIComponent(cursor)}`}`]
  }
  return [`${base}/query`, jsonBody('POST', cursor === undefined ? body : { ...body, cursor })]
}

function showQueryError(message) {
  const p = $('query-error')
  p.hidden = !message
  p.textContent = message ?? ''
}

/** The query path of a top-level record field, or null when no path reaches it (docs/queries.md). */
function pathOf(field) {
  if (field === '' || field.includes('.') || field.startsWith('$')) return null
  return META_PATHS.has(field) ? `value.${field}` : field
}

/** The where of the form as an object, or undefined when it is empty or not an object. */
function currentWhere() {
  try {
    const where = parseBox('data-where', 'where') ?? {}
    return where !== null && typeof where === 'object' && !Array.isArray(where) ? where : undefined
  } catch {
    return undefined
  }
}

/** Click-to-filter: adds `path = value` to the where (replacing a condition on that path) and runs it. */
function addFilter(path, value) {
  const where = currentWhere()
  if (where === undefined) return showQueryError('fix the where first: it is not a JSON object')
  where[path] = value
  $('data-where').value = JSON.stringify(where)
  void runQuery()
}

function removeFilter(path) {
  const where = currentWhere()
  if (where === undefined) return
  delete where[path]
  $('data-where').value = Object.keys(where).length === 0 ? '' : JSON.stringify(where)
  void runQuery()
}

/** The top-level conditions of the where as chips, each with a button that removes it. */
function drawFilters() {
  const where = currentWhere() ?? {}
  $('filters').replaceChildren(
    ...Object.entries(where).map(([path, cond]) =>
      h(
        'span',
        { class: 'chip', 'data-testid': 'filter-chip', 'data-field': path },
        h('span', { class: 'mono' }, `${path} = ${json(cond)}`),
        h('button', { type: 'button', class: 'secondary', title: 'remove this condition', onclick: () => removeFilter(path) }, '×'),
      ),
    ),
  )
}

// ---- results ------------------------------------------------------------------------------------

function drawResults() {
  const body = document.querySelector('#results .body')
  const r = q.result
  const info = $('page-info')
  if (!r) {
    info.textContent = ''
    body.replaceChildren(h('p', { class: 'muted' }, q.query ? 'no results' : 'pick a namespace'))
    drawPager()
    return
  }
  const items = r.items ?? []
  const scan = r.plan?.type === 'scan' ? ` · by a scan of ${r.plan.entitiesExamined} entities (no index serves it)` : ''
  const order = q.query.body.where === undefined && q.query.body.sort === undefined ? ' · all, in id order' : ''
  info.textContent = `${q.query.ns}${order} · page ${q.page + 1} · ${items.length} ${items.length === 1 ? 'entity' : 'entities'}${r.next ? ', more on the next pages' : ''}${scan}`
  const fields = [...new Set(items.flatMap((e) => Object.keys(e.value ?? {})))].sort()
  const shown = fields.slice(0, MAX_COLUMNS)
  body.replaceChildren(
    items.length === 0
      ? h('p', { class: 'muted', 'data-testid': 'no-results' }, 'no entity matches')
      : h(
          'div',
          { class: 'scroll' },
          h(
            'table',
            { class: 'results' },
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                h('th', {}, 'id'),
                shown.map((f) => h('th', { class: 'mono' }, f)),
                fields.length > shown.length ? h('th', { class: 'muted' }, `+${fields.length - shown.length} fields`) : null,
                h('th', {}, 'updated'),
              ),
            ),
            h('tbody', {}, items.map((e) => resultRow(e, shown, fields.length > shown.length))),
          ),
        ),
  )
  drawPager()
}

function resultRow(e, shown, more) {
  const open = openEntityKey() === `${q.query.ns}/${e.id}`
  return h(
    'tr',
    { 'data-testid': 'result-row', 'data-id': e.id, class: open ? 'open' : null },
    h(
      'td',
      { class: 'mono' },
      h('button', { type: 'button', class: 'link', 'data-testid': 'open-entity', title: 'open this entity', onclick: () => openEntity(q.query.ns, e.id) }, e.id),
      e.conflicts?.length ? h('span', { class: 'bad' }, ' conflict') : null,
    ),
    shown.map((f) => {
      if (!Object.hasOwn(e.value ?? {}, f)) return h('td', { class: 'muted' }, '–')
      const path = pathOf(f)
      const v = e.value[f]
      return h(
        'td',
        {},
        h(
          'button',
          { type: 'button', class: 'cell mono', 'data-testid': 'cell', 'data-field': f, disabled: path === null, title: path ? `filter: ${path} = ${json(v)}` : 'no query path reaches this field', onclick: () => addFilter(path, v) },
          json(v),
        ),
      )
    }),
    more ? h('td', {}) : null,
    h('td', { class: 'muted', title: e.updatedAt }, e.updatedAt?.replace('T', ' ').replace(/\.\d+Z$/, 'Z')),
  )
}

function drawPager() {
  const prev = document.querySelector('[data-testid="page-prev"]')
  const next = document.querySelector('[data-testid="page-next"]')
  prev.disabled = q.busy || q.page === 0 || !q.query
  next.disabled = q.busy || !q.result?.next
}

function goPage(delta) {
  const page = q.page + delta
  if (page < 0 || page >= q.cursors.length) return
  q.page = page
  void loadPage()
}

// ---- wiring -------------------------------------------------------------------------------------

$('query-form').addEventListener('submit', (event) => {
  event.preventDefault()
  void runQuery()
})
for (const id of ['data-where', 'data-sort']) {
  $(id).addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault()
      void runQuery()
    }
  })
}
$('data-where').addEventListener('input', drawFilters)
$('data-ns').addEventListener('change', () => {
  $('data-where').value = ''
  $('data-sort').value = ''
  void runQuery()
})
$('data-clear').addEventListener('click', () => {
  $('data-where').value = ''
  $('data-sort').value = ''
  void runQuery()
})
document.querySelector('[data-testid="page-prev"]').addEventListener('click', () => goPage(-1))
document.querySelector('[data-testid="page-next"]').addEventListener('click', () => goPage(1))
configureEntityView({
  nodeId: () => q.nodeId,
  // After an edit the page is read again (same cursor); after an open or a close only redrawn.
  changed: (saved) => (saved && q.query ? loadPage() : drawResults()),
})
