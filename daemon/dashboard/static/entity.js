// The Data tab's entity view (docs/operations.md): one entity's value, version vector, conflicts
// and texts, read with GET /v1/ns/:ns/entities/:id, GET .../text and GET .../text/:name, and an
// inline edit of one field saved with a PATCH of that field. Every value goes in as text.

import { api, entityPath, errorText, h, json, jsonBody } from './dom.js'

/** Most texts of one entity read, and characters of each shown. */
const MAX_TEXTS = 20
const TEXT_SHOWN = 20_000

const $ = (id) => document.getElementById(id)

/** The open entity: the answer of GET, its texts, the field being edited and the last error. */
let ent = null
/** What the view needs from the results: this node's id; `changed(saved)` after an open, a close or a saved edit. */
const hooks = { nodeId: () => null, changed: () => {} }

/** Sets the hooks of {@link hooks}. */
export function configureEntityView(given) {
  Object.assign(hooks, given)
}

/** `ns/id` of the open entity, or null. */
export function openEntityKey() {
  return ent ? `${ent.ns}/${ent.id}` : null
}

/** Opens an entity in the view (replacing the one open). */
export async function openEntity(ns, id) {
  ent = { ns, id, entity: null, texts: [], editing: null, error: null, busy: false, loadError: null }
  $('entity').hidden = false
  $('entity-title').textContent = `${ns} / ${id}`
  hooks.changed(false)
  drawEntity()
  await loadEntity(ent)
  $('entity').scrollIntoView({ block: 'nearest' })
}

/** Reads the entity, its text names and its texts (GET entity, GET .../text, GET .../text/:name). */
async function loadEntity(target) {
  try {
    const [entity, names] = await Promise.all([api(entityPath(target.ns, target.id)), api(entityPath(target.ns, target.id, 'text'))])
    const texts = await Promise.all(names.texts.slice(0, MAX_TEXTS).map(async (name) => ({ name, text: (await api(entityPath(target.ns, target.id, 'text', name))).text })))
    target.entity = entity
    target.texts = texts
    target.moreTexts = names.texts.length - texts.length
    target.loadError = null
  } catch (error) {
    target.loadError = errorText(error)
  }
  if (ent === target) drawEntity()
}

function sameVersion(a, b) {
  const keys = new Set([...Object.keys(a ?? {}), ...Object.keys(b ?? {})])
  return [...keys].every((k) => (a?.[k] ?? 0) === (b?.[k] ?? 0))
}

/**
 * Saves the field being edited with a PATCH of that one field. The API takes no version to check
 * (docs/api.md), so the entity is read first: when it changed since it was shown, the new value
 * is shown instead and nothing is written until Save is pressed again.
 */
async function saveField() {
  const target = ent
  const { field, draft } = target.editing
  let value
  try {
    value = JSON.parse(draft)
  } catch {
    target.error = 'not valid JSON (a string needs quotes: "text"; null removes the field)'
    return drawEntity()
  }
  target.busy = true
  target.error = null
  drawEntity()
  try {
    const current = await api(entityPath(target.ns, target.id))
    if (!sameVersion(current.version, target.entity.version)) {
      target.entity = current
      target.error = 'the entity changed since it was opened: its new value is shown; Save again to write yours over it'
    } else {
      target.entity = await api(entityPath(target.ns, target.id), jsonBody('PATCH', { [field]: value }))
      target.editing = null
      hooks.changed(true)
    }
  } catch (error) {
    target.error = errorText(error)
  } finally {
    target.busy = false
  }
  if (ent === target) drawEntity()
}

function drawEntity() {
  const body = document.querySelector('#entity .body')
  if (!ent) return
  if (ent.loadError) return body.replaceChildren(h('p', { class: 'bad', 'data-testid': 'entity-error' }, ent.loadError))
  const e = ent.entity
  if (!e) return body.replaceChildren(h('p', { class: 'muted' }, 'loading…'))
  const conflicted = new Set((e.conflicts ?? []).map((c) => c.field))
  // One wrapper: h() drops the absent (null) parts, replaceChildren would print them.
  body.replaceChildren(
    h(
      'div',
      {},
      h('dl', {}, h('dt', {}, 'updated'), h('dd', { class: 'mono' }, e.updatedAt)),
      h('h3', {}, 'value'),
      h(
        'table',
        { class: 'value' },
        h('tbody', {}, Object.entries(e.value ?? {}).map(([f, v]) => fieldRow(f, v, conflicted.has(f)))),
      ),
      Object.keys(e.value ?? {}).length === 0 ? h('p', { class: 'muted' }, 'no fields') : null,
      ent.error ? h('p', { class: 'bad', 'data-testid': 'edit-error' }, ent.error) : null,
      h('h3', {}, 'version vector'),
      h(
        'table',
        { class: 'compact' },
        h(
          'tbody',
          {},
          Object.entries(e.version ?? {})
            .sort(([a], [b]) => a.localeCompare(b))
            .map(([origin, n]) =>
              h('tr', { 'data-testid': 'vv-row', 'data-origin': origin }, h('td', { class: 'mono' }, origin), h('td', { class: 'muted' }, origin === hooks.nodeId() ? 'this node' : ''), h('td', { class: 'num' }, n)),
            ),
        ),
      ),
      h('h3', {}, 'conflicts'),
      conflictsOf(e),
      h('h3', {}, 'texts'),
      textsOf(ent),
    ),
  )
}

function fieldRow(field, value, conflicted) {
  const editing = ent.editing?.field === field
  return h(
    'tr',
    { 'data-testid': 'entity-field', 'data-field': field },
    h('td', { class: 'mono' }, field, conflicted ? h('span', { class: 'bad' }, ' conflict') : null),
    h('td', {}, editing ? editor(value) : h('pre', { class: 'mono' }, JSON.stringify(value, null, 2))),
    h(
      'td',
      { class: 'actions' },
      editing
        ? null
        : h(
            'button',
            { type: 'button', class: 'secondary', 'data-testid': 'edit-field', disabled: ent.busy, onclick: () => startEdit(field, value) },
            'Edit',
          ),
    ),
  )
}

function startEdit(field, value) {
  ent.editing = { field, draft: JSON.stringify(value, null, 2) }
  ent.error = null
  drawEntity()
  document.querySelector('[data-testid="edit-value"]')?.focus()
}

/** The edit box of the field being edited; `current` is its value as last read. */
function editor(current) {
  const area = h('textarea', { class: 'mono', rows: 3, spellcheck: 'false', 'data-testid': 'edit-value', 'aria-label': `new value of ${ent.editing.field}` })
  area.value = ent.editing.draft
  area.addEventListener('input', () => {
    ent.editing.draft = area.value
  })
  return h(
    'div',
    { class: 'editor' },
    area,
    h('span', { class: 'muted', 'data-testid': 'edit-current' }, `now ${json(current)} · JSON; null removes the field`),
    h('button', { type: 'button', 'data-testid': 'save-field', disabled: ent.busy, onclick: () => saveField() }, 'Save'),
    h(
      'button',
      {
        type: 'button',
        class: 'secondary',
        onclick: () => {
          ent.editing = null
          ent.error = null
          drawEntity()
        },
      },
      'Cancel',
    ),
  )
}

function conflictsOf(e) {
  if (!e.conflicts?.length) return h('p', { class: 'good' }, 'none')
  return h(
    'table',
    {},
    h('thead', {}, h('tr', {}, h('th', {}, 'field'), h('th', {}, 'concurrent values (resolve them on the Overview tab)'))),
    h(
      'tbody',
      {},
      e.conflicts.map((c) =>
        h(
          'tr',
          { 'data-testid': 'entity-conflict', 'data-field': c.field },
          h('td', { class: 'mono' }, c.field),
          h(
            'td',
            {},
            c.values.map((v) => h('div', {}, h('span', { class: 'mono' }, v.deleted ? 'deleted' : json(v.value)), ' ', h('span', { class: 'muted' }, `from ${v.origin}`))),
          ),
        ),
      ),
    ),
  )
}

function textsOf(target) {
  if (target.texts.length === 0) return h('p', { class: 'muted' }, 'no texts')
  return h(
    'div',
    {},
    target.texts.map(({ name, text }) =>
      h(
        'div',
        { class: 'text', 'data-testid': 'text', 'data-name': name },
        h('h4', { class: 'mono' }, name, h('span', { class: 'muted' }, ` ${text.length} characters`)),
        h('pre', {}, text.length > TEXT_SHOWN ? `${text.slice(0, TEXT_SHOWN)}… (${text.length - TEXT_SHOWN} more)` : text),
      ),
    ),
    target.moreTexts > 0 ? h('p', { class: 'muted' }, `and ${target.moreTexts} more texts`) : null,
  )
}

$('entity-close').addEventListener('click', () => {
  ent = null
  $('entity').hidden = true
  hooks.changed(false)
})
