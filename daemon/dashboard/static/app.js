// meshsync dashboard: plain ES module, no build step, no framework. It reads the daemon's v1 API
// (the session cookie authorizes it): /v1/status, /v1/peers and /v1/conflicts every second, and
// one namespace's change feed live over server-sent events. The Data tab is data.js. Every value
// from the API is inserted as text, never as HTML.

import { api, h, json, short } from './dom.js'
import { showDataTab, syncDataNamespaces } from './data.js'

const POLL_MS = 1000
const HIDDEN_POLL_MS = 5000
const RATE_WINDOW = 60
const FEED_MAX = 30

/** @type {{status: any, peers: any[], conflicts: any[], samples: {t: number, total: number, local: number}[], feed: any[], feedNs: string | null, source: EventSource | null, busy: Set<string>, errors: Map<string, string>}} */
const state = { status: null, peers: [], conflicts: [], samples: [], feed: [], feedNs: null, source: null, busy: new Set(), errors: new Map() }
/** Last rendered data per section: a section is rebuilt only when its data changed. */
const rendered = new Map()
let timer = 0
let refreshSoon = 0

// ---- helpers ----------------------------------------------------------------------------------

/** Replaces the body of section `id` with `build(data)` unless `data` is what it shows already. */
function render(id, data, build) {
  const key = JSON.stringify(data) ?? ''
  if (rendered.get(id) === key) return
  rendered.set(id, key)
  const body = document.querySelector(`#${id} .body`)
  if (body) body.replaceChildren(...[build(data)].flat())
}

function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000))
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`
}

function ago(when) {
  if (when === null || when === undefined) return 'never'
  const t = typeof when === 'number' ? when : Date.parse(when)
  if (!Number.isFinite(t)) return String(when)
  const d = Date.now() - t
  return d < 1500 ? 'just now' : `${duration(d)} ago`
}

function bytes(n) {
  if (typeof n !== 'number') return '–'
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`
  return `${(n / 1024 ** 3).toFixed(2)} GiB`
}

function sumVv(vv) {
  return Object.values(vv ?? {}).reduce((a, b) => a + b, 0)
}

// ---- polling ------------------------------------------------------------------------------------

async function tick() {
  clearTimeout(timer)
  try {
    const [status, peers, conflicts] = await Promise.all([api('/v1/status'), api('/v1/peers'), api('/v1/conflicts')])
    state.status = status
    state.peers = peers
    state.conflicts = conflicts
    state.samples.push({ t: Date.now(), total: sumVv(status.versionVector), local: status.versionVector?.[status.nodeId] ?? 0 })
    if (state.samples.length > RATE_WINDOW + 1) state.samples.shift()
    setLive(true)
    draw()
  } catch (error) {
    setLive(false, error instanceof Error ? error.message : String(error))
  }
  timer = setTimeout(tick, document.hidden ? HIDDEN_POLL_MS : POLL_MS)
}

/** A refresh shortly after a change arrived on the feed, so counts follow writes at once. */
function refreshAfterChange() {
  if (refreshSoon) return
  refreshSoon = setTimeout(() => {
    refreshSoon = 0
    void tick()
  }, 150)
}

function setLive(ok, message) {
  const live = document.getElementById('live')
  live.dataset.state = ok ? 'live' : 'offline'
  live.textContent = ok ? 'live' : 'offline'
  const banner = document.getElementById('error')
  banner.hidden = ok
  banner.textContent = ok ? '' : message
}

// ---- sections -----------------------------------------------------------------------------------

function draw() {
  const s = state.status
  document.getElementById('title-node').textContent = `node ${s.nodeId}`
  document.title = `meshsync ${s.nodeId}`
  drawNode(s)
  drawRate()
  drawPeers()
  drawNamespaces(s)
  drawConflicts()
  drawBackups(s.backups)
  syncFeedChoices(Object.keys(s.namespaces ?? {}))
  syncDataNamespaces(Object.keys(s.namespaces ?? {}).sort(), s.nodeId)
}

function nodeLabel(nodeId) {
  if (nodeId === state.status?.nodeId) return 'this node'
  const peer = state.peers.find((p) => p.nodeId === nodeId)
  return peer ? `peer ${short(peer.peerId, 12)}` : 'not connected'
}

function drawNode(s) {
  const vv = Object.entries(s.versionVector ?? {}).sort(([a], [b]) => a.localeCompare(b))
  render('node', { s: { ...s, uptimeMs: Math.floor(s.uptimeMs / 1000), backups: undefined }, names: vv.map(([n]) => nodeLabel(n)) }, () => [
    h(
      'dl',
      {},
      h('dt', {}, 'node id'),
      h('dd', { class: 'mono', 'data-testid': 'node-id' }, s.nodeId),
      h('dt', {}, 'peer id'),
      h('dd', { class: 'mono' }, s.peerId),
      h('dt', {}, 'uptime'),
      h('dd', {}, duration(s.uptimeMs)),
      h('dt', {}, 'entities'),
      h('dd', { 'data-testid': 'entity-total' }, s.entities),
      h('dt', {}, 'peers connected'),
      h('dd', {}, s.peers),
      h('dt', {}, 'listen'),
      h('dd', { class: 'mono' }, (s.listen ?? []).map((a) => h('div', {}, a))),
    ),
    h(
      'table',
      {},
      h('thead', {}, h('tr', {}, h('th', {}, 'version vector: origin'), h('th', {}, ''), h('th', { class: 'num' }, 'changes'))),
      h(
        'tbody',
        {},
        vv.length === 0
          ? h('tr', {}, h('td', { class: 'muted', colspan: 3 }, 'no changes yet'))
          : vv.map(([origin, n]) => h('tr', {}, h('td', { class: 'mono' }, origin), h('td', { class: 'muted' }, nodeLabel(origin)), h('td', { class: 'num' }, n))),
      ),
    ),
  ])
}

function drawRate() {
  const xs = state.samples
  const rates = []
  for (let i = 1; i < xs.length; i++) {
    const dt = (xs[i].t - xs[i - 1].t) / 1000
    rates.push(dt > 0 ? Math.max(0, (xs[i].total - xs[i - 1].total) / dt) : 0)
  }
  const first = xs[0]
  const last = xs[xs.length - 1]
  const span = first && last ? (last.t - first.t) / 1000 : 0
  // The headline: the last ~5 s, steadier than one poll interval.
  const recent = xs[Math.max(0, xs.length - 6)]
  const now = recent && last && last.t > recent.t ? (last.total - recent.total) / ((last.t - recent.t) / 1000) : 0
  const local = span > 0 ? (last.local - first.local) / span : 0
  const total = span > 0 ? (last.total - first.total) / span : 0
  render('rate', { rates: rates.map((r) => Math.round(r * 10)), span: Math.round(span) }, () => [
    h('div', { class: 'big', 'data-testid': 'rate' }, `${now.toFixed(now < 10 ? 1 : 0)}/s`),
    h(
      'div',
      { class: 'muted' },
      span > 0 ? `last ${Math.round(span)} s: ${total.toFixed(1)}/s (${local.toFixed(1)}/s written here, ${(total - local).toFixed(1)}/s from peers)` : 'measuring…',
    ),
    sparkline(rates),
  ])
}

function sparkline(values) {
  const ns = 'http://www.w3.org/2000/svg'
  const svg = document.createElementNS(ns, 'svg')
  svg.setAttribute('class', 'spark')
  svg.setAttribute('viewBox', `0 0 ${RATE_WINDOW} 30`)
  svg.setAttribute('preserveAspectRatio', 'none')
  if (values.length < 2) return svg
  const max = Math.max(1, ...values)
  const x0 = RATE_WINDOW - (values.length - 1)
  const points = values.map((v, i) => `${x0 + i},${(30 - (v / max) * 28).toFixed(2)}`)
  const area = document.createElementNS(ns, 'polygon')
  area.setAttribute('class', 'area')
  area.setAttribute('points', `${x0},30 ${points.join(' ')} ${RATE_WINDOW},30`)
  const line = document.createElementNS(ns, 'polyline')
  line.setAttribute('points', points.join(' '))
  line.setAttribute('vector-effect', 'non-scaling-stroke')
  svg.append(area, line)
  return svg
}

/** A bootstrap address that does not answer, and why (`failing` of a /v1/peers row; docs/operations.md, Dial failures). */
function failingItem(f) {
  return h(
    'li',
    { 'data-testid': 'failing-dial', 'data-addr': f.addr, 'data-error': f.error },
    h('span', { class: 'mono' }, f.addr),
    ' ',
    h('strong', {}, f.error),
    `: ${f.message} (${f.attempts} failed ${f.attempts === 1 ? 'dial' : 'dials'}, since ${ago(f.since)})`,
  )
}

function drawPeers() {
  const rank = (p) => (p.connected ? 0 : p.failing ? 1 : 2)
  const peers = [...state.peers].sort((a, b) => rank(a) - rank(b) || String(a.peerId ?? a.addrs?.[0]).localeCompare(String(b.peerId ?? b.addrs?.[0])))
  const failing = peers.filter((p) => p.failing).map((p) => p.failing)
  const view = peers.map((p) => ({ ...p, lastSyncAt: ago(p.lastSyncAt), failing: p.failing && { ...p.failing, since: ago(p.failing.since), lastAt: undefined } }))
  render('peers', view, () => [
    failing.length === 0
      ? []
      : h('div', { class: 'banner warn', 'data-testid': 'failing-dials' }, h('p', {}, 'Bootstrap addresses that do not answer:'), h('ul', {}, failing.map(failingItem))),
    peers.length === 0
      ? h('p', { class: 'muted', 'data-testid': 'no-peers' }, 'no peers yet (mDNS, --bootstrap or POST /v1/peers)')
      : h(
          'table',
          { class: 'peers' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              h('th', {}, 'state'),
              h('th', {}, 'peer id'),
              h('th', {}, 'node id'),
              h('th', { class: 'num' }, 'behind'),
              h('th', {}, 'last sync'),
              h('th', { class: 'num' }, 'in'),
              h('th', { class: 'num' }, 'out'),
              h('th', { class: 'num' }, 'bad input'),
              h('th', {}, 'address'),
            ),
          ),
          h(
            'tbody',
            {},
            peers.map((p) =>
              h(
                'tr',
                { 'data-testid': 'peer-row', 'data-peer-id': p.peerId ?? '', 'data-connected': String(p.connected) },
                h('td', {}, h('span', { class: `dot ${p.connected ? 'up' : p.failing ? 'bad' : 'down'}`, title: p.failing?.message }, p.connected ? 'connected' : p.failing ? p.failing.error : 'disconnected')),
                h('td', { class: 'mono', title: p.peerId ?? '' }, p.peerId ? short(p.peerId, 16) : '–'),
                h('td', { class: 'mono' }, p.nodeId ?? '–'),
                h('td', { class: `num ${p.behind === 0 ? 'behind-0' : p.behind ? 'behind-n' : ''}` }, p.behind ?? '–'),
                h('td', {}, ago(p.lastSyncAt)),
                h('td', { class: 'num' }, bytes(p.bytesIn)),
                h('td', { class: 'num' }, bytes(p.bytesOut)),
                h('td', { class: `num ${p.invalidInputs ? 'bad' : ''}` }, p.invalidInputs ?? 0),
                h('td', { class: 'mono muted addr', title: (p.addrs ?? []).join('\n') }, p.addrs?.[0] ?? ''),
              ),
            ),
          ),
        ),
  ])
}

function drawNamespaces(s) {
  const entries = Object.entries(s.namespaces ?? {}).sort(([a], [b]) => a.localeCompare(b))
  const max = Math.max(1, ...entries.map(([, n]) => n))
  render('namespaces', entries, () =>
    entries.length === 0
      ? h('p', { class: 'muted' }, 'no namespaces yet')
      : h(
          'table',
          {},
          h('thead', {}, h('tr', {}, h('th', {}, 'namespace'), h('th', { class: 'num' }, 'entities'), h('th', {}, ''))),
          h(
            'tbody',
            {},
            entries.map(([ns, n]) =>
              h(
                'tr',
                { 'data-testid': 'ns-row', 'data-ns': ns },
                h('td', { class: 'mono' }, ns),
                h('td', { class: 'num', 'data-testid': 'ns-count' }, n),
                h('td', { class: 'barcell' }, barFor(n, max)),
              ),
            ),
          ),
        ),
  )
}

function barFor(n, max) {
  const bar = h('div', { class: 'bar' })
  bar.style.width = `${Math.round((n / max) * 100)}%`
  return bar
}

// ---- conflicts ----------------------------------------------------------------------------------

function drawConflicts() {
  const byEntity = new Map()
  for (const c of state.conflicts) {
    const key = `${c.ns}/${c.id}`
    if (!byEntity.has(key)) byEntity.set(key, { ns: c.ns, id: c.id, fields: [] })
    byEntity.get(key).fields.push(c)
  }
  const view = { conflicts: state.conflicts, busy: [...state.busy], errors: [...state.errors] }
  render('conflicts', view, () =>
    byEntity.size === 0
      ? h('p', { class: 'good', 'data-testid': 'no-conflicts' }, 'no open conflicts')
      : [...byEntity.entries()].map(([key, e]) => conflictCard(key, e)),
  )
}

function conflictCard(key, e) {
  const busy = state.busy.has(key)
  const error = state.errors.get(key)
  return h(
    'div',
    { class: 'conflict', 'data-testid': 'conflict', 'data-entity': key },
    h(
      'h3',
      {},
      h('span', { class: 'mono' }, key),
      h(
        'button',
        { 'data-testid': 'resolve', disabled: busy, title: 'write the merged winners on top of every concurrent value', onclick: () => resolve(e.ns, e.id, {}) },
        'Resolve (keep winners)',
      ),
      error ? h('span', { class: 'error' }, error) : null,
    ),
    h(
      'table',
      {},
      h('thead', {}, h('tr', {}, h('th', {}, 'field'), h('th', {}, 'winner'), h('th', {}, 'concurrent values'))),
      h(
        'tbody',
        {},
        e.fields.map((c) =>
          h(
            'tr',
            {},
            h('td', { class: 'mono' }, c.field),
            h('td', { class: 'mono' }, c.field === '$deleted' ? 'kept (update wins)' : json(c.winner)),
            h(
              'td',
              {},
              c.values.map((v) =>
                h(
                  'div',
                  {},
                  h('span', { class: 'mono' }, v.deleted ? 'deleted' : json(v.value)),
                  ' ',
                  h('span', { class: 'muted' }, `from ${v.origin} (${nodeLabel(v.origin)})`),
                  ' ',
                  c.field === '$deleted' || v.deleted
                    ? null
                    : h('button', { class: 'secondary', disabled: busy, title: `resolve ${c.field} to this value`, onclick: () => resolve(e.ns, e.id, { [c.field]: v.value }) }, 'use this'),
                ),
              ),
            ),
          ),
        ),
      ),
    ),
  )
}

async function resolve(ns, id, fields) {
  const key = `${ns}/${id}`
  state.busy.add(key)
  state.errors.delete(key)
  drawConflicts()
  try {
    await api(`/v1/ns/${encodeURIComponent(ns)}/entities/${encodeURIComponent(id)}/resolve`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(fields),
    })
  } catch (error) {
    state.errors.set(key, error instanceof Error ? error.message : String(error))
  } finally {
    state.busy.delete(key)
  }
  await tick()
}

// ---- backups (present once the daemon reports them in /v1/status) ------------------------------

function drawBackups(backups) {
  const section = document.getElementById('backups')
  section.hidden = backups === undefined || backups === null
  if (section.hidden) return
  render('backups', backups, () => [backupHeadline(backups), describe(backups)])
}

/** One line on top: when the last backup succeeded, or that the latest attempt failed. */
function backupHeadline(b) {
  if (b === null || typeof b !== 'object' || Array.isArray(b)) return null
  const ok = b.lastSuccess
  const failed = b.lastFailure
  if (failed && (!ok || Date.parse(failed.at) > Date.parse(ok.at))) {
    return h('p', { class: 'bad', 'data-testid': 'backup-headline' }, `last backup failed ${ago(failed.at)}: ${failed.code ?? ''} ${failed.message ?? ''}`)
  }
  if (ok) return h('p', { class: 'good', 'data-testid': 'backup-headline' }, `last backup ${ago(ok.at)}${ok.type ? ` (${ok.type}${ok.method === 'files' ? ' of the files' : ''}` : ''}${ok.bytes !== undefined ? `, ${bytes(ok.bytes)})` : ok.type ? ')' : ''}`)
  return h('p', { class: 'muted', 'data-testid': 'backup-headline' }, b.running ? 'first backup running…' : 'no backup taken yet')
}

/** A generic, readable view of whatever the status reports about backups. */
function describe(value) {
  if (Array.isArray(value)) {
    if (value.length === 0) return h('p', { class: 'muted' }, 'none')
    return h('div', {}, value.map((v) => h('div', { class: 'conflict' }, describe(v))))
  }
  if (value === null) return h('span', { class: 'muted' }, 'none')
  if (typeof value !== 'object') return h('span', { class: 'mono' }, json(value))
  return h(
    'dl',
    {},
    Object.entries(value).map(([k, v]) => {
      const tone = v === null || v === undefined ? '' : /fail|error/i.test(k) ? 'bad' : /success|ok$/i.test(k) ? 'good' : ''
      let shown
      if (v === null || typeof v === 'object') shown = describe(v)
      else if (/(At|time|created)$/i.test(k) && (typeof v === 'string' || typeof v === 'number')) shown = `${typeof v === 'number' ? new Date(v).toISOString() : v} (${ago(v)})`
      else if (/ageMs$|Ms$/.test(k) && typeof v === 'number') shown = duration(v)
      else if (/bytes|size/i.test(k) && typeof v === 'number') shown = bytes(v)
      else shown = json(v)
      return [h('dt', {}, k), h('dd', { class: tone }, shown)]
    }),
  )
}

// ---- live change feed (one namespace at a time: browsers allow few connections per host) -------

function syncFeedChoices(namespaces) {
  const select = document.getElementById('feed-ns')
  const current = [...select.options].map((o) => o.value)
  if (JSON.stringify(current) !== JSON.stringify(namespaces)) {
    select.replaceChildren(...namespaces.map((ns) => h('option', { value: ns }, ns)))
    if (state.feedNs && namespaces.includes(state.feedNs)) select.value = state.feedNs
  }
  if (!state.feedNs && namespaces.length > 0) openFeed(namespaces[0])
}

function openFeed(ns) {
  state.source?.close()
  state.feedNs = ns
  state.feed = []
  document.getElementById('feed-ns').value = ns
  drawFeed()
  const source = new EventSource(`/v1/ns/${encodeURIComponent(ns)}/changes?since=now`)
  source.addEventListener('change', (event) => {
    let change
    try {
      change = JSON.parse(event.data)
    } catch {
      return
    }
    state.feed.unshift({ ...change, at: Date.now(), seq: event.lastEventId })
    state.feed.length = Math.min(state.feed.length, FEED_MAX)
    drawFeed(true)
    refreshAfterChange()
  })
  state.source = source
}

function drawFeed(fresh = false) {
  const body = document.querySelector('#changes .body')
  if (state.feed.length === 0) {
    body.replaceChildren(h('p', { class: 'muted' }, state.feedNs ? `waiting for changes in ${state.feedNs}…` : 'no namespaces yet'))
    return
  }
  body.replaceChildren(
    h(
      'ol',
      { class: 'feed', 'data-testid': 'feed' },
      state.feed.map((c, i) =>
        h(
          'li',
          { class: i === 0 && fresh ? 'fresh' : null, 'data-testid': 'feed-item', 'data-id': c.id },
          h('span', { class: `mono op-${c.op}` }, c.op),
          h('span', { class: 'mono' }, c.id),
          h('span', { class: 'mono muted' }, c.op === 'delete' ? '' : json(c.value)),
          c.conflicts?.length ? h('span', { class: 'bad' }, 'conflict') : null,
        ),
      ),
    ),
  )
}

// ---- tabs: Overview and Data (the address's #data opens the data browser) -----------------------

function showTab() {
  const tab = window.location.hash === '#data' ? 'data' : 'overview'
  for (const link of document.querySelectorAll('[data-tab]')) link.setAttribute('aria-current', String(link.dataset.tab === tab))
  document.getElementById('overview').hidden = tab !== 'overview'
  document.getElementById('data').hidden = tab !== 'data'
  if (tab === 'data') showDataTab()
}

window.addEventListener('hashchange', showTab)
showTab()
document.getElementById('feed-ns').addEventListener('change', (event) => openFeed(event.target.value))
document.addEventListener('visibilitychange', () => {
  if (!document.hidden) void tick()
})
void tick()
