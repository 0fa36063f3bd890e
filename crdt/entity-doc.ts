import * as Y from 'yjs'
import { MAX_FIELD_NAME_BYTES } from './change-codec.ts'
import { ValidationError } from './errors.ts'
import { assertTextName, isWellFormed, utf8ByteLength } from './names.ts'

/** A JSON value as stored in one field of a record. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue }
/** A record: the JSON object held by an entity's root Y.Map `data`. */
export type JsonRecord = { [field: string]: JsonValue }
/** One splice on a Y.Text: `[position, deleteCount, insert]`, positions in UTF-16 code units. */
export type TextSplice = readonly [number, number, string]

/** Name of the root Y.Map holding the record. Text roots may not use it. */
export const DATA_ROOT = 'data'

/** What one local edit produced: the Yjs update and the names it touched. */
export interface EntityEdit {
  /** Yjs V1 update of the edit, or null when it changed nothing. */
  readonly update: Uint8Array | null
  readonly fields: string[]
  readonly texts: string[]
}

/** A fresh entity document, optionally loaded from an encoded state. */
export function createEntityDoc(state?: Uint8Array, clientID?: number): Y.Doc {
  // A fixed guid: Yjs would otherwise draw a random uuid per document (its guid only matters
  // for subdocuments, which entities do not use), the largest single cost of creating one.
  const doc = new Y.Doc({ gc: true, guid: 'meshsync-entity' })
  transactions.set(doc, 0)
  doc.on('afterTransaction', () => {
    transactions.set(doc, (transactions.get(doc) ?? 0) + 1)
  })
  if (state && state.length > 0) Y.applyUpdate(doc, state)
  // Set after loading: Yjs replaces a clientID that shows up in a remote (non-local) update,
  // and our own earlier edits are in the state.
  if (clientID !== undefined) doc.clientID = clientID
  return doc
}

/** The record held by the document. */
export function readRecord(doc: Y.Doc): JsonRecord {
  return doc.getMap(DATA_ROOT).toJSON() as JsonRecord
}

/** Names of the document's text roots, sorted. */
export function textNames(doc: Y.Doc): string[] {
  return [...doc.share.keys()].filter((name) => name !== DATA_ROOT).sort()
}

/** Current content of a text root ('' when it does not exist). */
export function readText(doc: Y.Doc, name: string): string {
  assertTextRoot(name)
  // Y.Doc.getText creates the root: a read must not, or textNames would list it on this replica only.
  if (!doc.share.has(name)) return ''
  return textView(doc, name).text
}

/**
 * Transactions of each document made by {@link createEntityDoc} so far: a text root's string is
 * built once per transaction ({@link textView}) rather than on every read of a large text.
 */
const transactions = new WeakMap<Y.Doc, number>()

/** A text root as a string, as of one transaction of its document. */
interface TextView {
  readonly tx: number
  readonly text: string
  /** True when the text may hold a surrogate (false: it holds none). */
  readonly surrogates: boolean
}

const textViews = new WeakMap<Y.Text, TextView>()
/** Most splices of one edit applied to a cached string rather than leaving it to be rebuilt. */
const INCREMENTAL_SPLICES = 8

/**
 * The text of a root as a string, reused until the document's next transaction (documents made by
 * {@link createEntityDoc}; any other document's text is built on every call).
 */
function textView(doc: Y.Doc, name: string): TextView {
  const root = doc.getText(name)
  const tx = transactions.get(doc)
  const cached = textViews.get(root)
  if (tx !== undefined && cached !== undefined && cached.tx === tx) return cached
  const text = root.toString()
  const view = { tx: tx ?? -1, text, surrogates: SURROGATE_RE.test(text) }
  if (tx !== undefined) textViews.set(root, view)
  return view
}

/**
 * Throws `INVALID_RECORD` unless `record` survives replication unchanged: every key and string
 * at any depth is well-formed text (Yjs writes a lone surrogate as U+FFFD, so peers would read
 * something else), no key at any depth is `__proto__` (a decoded object cannot hold it as data),
 * and field names are at most {@link MAX_FIELD_NAME_BYTES} UTF-8 bytes (the change codec's limit).
 */
export function assertRecord(record: JsonRecord): void {
  for (const key of Object.keys(record)) {
    if (key.length * 3 > MAX_FIELD_NAME_BYTES && utf8ByteLength(key) > MAX_FIELD_NAME_BYTES) {
      throw new ValidationError('INVALID_RECORD', `field names are at most ${MAX_FIELD_NAME_BYTES} UTF-8 bytes`)
    }
  }
  if (!replicable(record)) {
    throw new ValidationError('INVALID_RECORD', 'record keys and strings must be well-formed Unicode, and no key may be "__proto__"')
  }
}

function replicable(value: unknown): boolean {
  if (typeof value === 'string') return isWellFormed(value)
  if (Array.isArray(value)) return value.every(replicable)
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).every(([k, v]) => k !== '__proto__' && isWellFormed(k) && replicable(v))
  }
  return true
}

/**
 * Replaces the record: fields absent from `record` are removed, fields whose value differs are
 * set, equal fields are left alone (so they do not conflict with concurrent writers). Throws
 * `INVALID_RECORD` (see {@link assertRecord}) and changes nothing on a record peers could not
 * read back as written.
 */
export function replaceRecord(doc: Y.Doc, record: JsonRecord): EntityEdit {
  assertRecord(record)
  return edit(doc, (fields) => {
    const data = doc.getMap(DATA_ROOT)
    for (const key of [...data.keys()]) {
      if (!Object.hasOwn(record, key)) {
        data.delete(key)
        fields.add(key)
      }
    }
    for (const [key, value] of Object.entries(record)) setIfChanged(data, key, value, fields)
  })
}

/** Sets the fields of `patch`; a `null` value removes the field. Throws like {@link replaceRecord}. */
export function patchRecord(doc: Y.Doc, patch: JsonRecord): EntityEdit {
  assertRecord(patch)
  return edit(doc, (fields) => {
    const data = doc.getMap(DATA_ROOT)
    for (const [key, value] of Object.entries(patch)) {
      if (value === null) {
        if (data.has(key)) {
          data.delete(key)
          fields.add(key)
        }
      } else {
        setIfChanged(data, key, value, fields)
      }
    }
  })
}

/** A root's text, or undefined when a client made that root something other than a Y.Text. */
function textContent(doc: Y.Doc, name: string): string | undefined {
  try {
    return doc.getText(name).toString()
  } catch {
    return undefined
  }
}

/**
 * Applies an update made by a Yjs client editing the entity's document directly (y-websocket):
 * reports the record fields and text roots whose content it changed, and the update itself when
 * it changed anything (null for an update already known). An update whose dependencies are
 * missing throws `INVALID_UPDATE` (the document then holds pending structs: the caller drops it).
 */
export function applyClientUpdate(doc: Y.Doc, update: Uint8Array): EntityEdit {
  const before = readRecord(doc)
  const textsBefore = new Map(textNames(doc).map((name) => [name, textContent(doc, name)]))
  let changed = false
  const onUpdate = (): void => {
    changed = true
  }
  doc.on('update', onUpdate)
  try {
    Y.applyUpdate(doc, update)
  } finally {
    doc.off('update', onUpdate)
  }
  if (hasPendingUpdates(doc)) throw new ValidationError('INVALID_UPDATE', 'the update depends on changes this node does not have')
  if (!changed) return { update: null, fields: [], texts: [] }
  const after = readRecord(doc)
  const fields = [...new Set([...Object.keys(before), ...Object.keys(after)])].filter(
    (k) => !Object.hasOwn(before, k) || !Object.hasOwn(after, k) || !jsonEqual(before[k] as JsonValue, after[k] as JsonValue),
  )
  const texts = textNames(doc).filter((name) => textContent(doc, name) !== (textsBefore.get(name) ?? ''))
  return { update, fields: fields.sort(), texts: texts.sort() }
}

/**
 * Writes every field of `values` whether or not it already holds that value (null removes it):
 * a resolution is a write on top of every concurrent sibling, even when it keeps the winner.
 */
export function resolveRecord(doc: Y.Doc, values: JsonRecord): EntityEdit {
  assertRecord(values)
  return edit(doc, (fields) => {
    const data = doc.getMap(DATA_ROOT)
    for (const [key, value] of Object.entries(values)) {
      if (value === null) data.delete(key)
      else data.set(key, value)
      fields.add(key)
    }
  })
}

/**
 * The text `splices` make of `text`, with the checks of {@link spliceText}: a splice outside the
 * text, or with an end inside a surrogate pair, throws `TEXT_RANGE`; an insert that is not
 * well-formed Unicode (a lone surrogate, which Yjs would send to peers as U+FFFD) throws
 * `INVALID_TEXT`.
 */
export function spliceString(text: string, splices: readonly TextSplice[]): string {
  if (checkedWithoutSurrogates(text, SURROGATE_RE.test(text), splices)) return applySplices(text, splices)
  let s = text
  for (const [pos, del, ins] of splices) {
    if (!Number.isSafeInteger(pos) || !Number.isSafeInteger(del) || pos < 0 || del < 0 || pos + del > s.length) {
      throw new ValidationError('TEXT_RANGE', `splice [${pos}, ${del}] is outside the text (length ${s.length})`)
    }
    // Yjs would replace both halves of a split pair with U+FFFD: the character would be lost.
    if (splitsSurrogatePair(s, pos) || splitsSurrogatePair(s, pos + del)) {
      throw new ValidationError('TEXT_RANGE', `splice [${pos}, ${del}] splits a surrogate pair`)
    }
    if (typeof ins !== 'string' || !isWellFormed(ins)) {
      throw new ValidationError('INVALID_TEXT', 'inserted text must be well-formed Unicode')
    }
    s = s.slice(0, pos) + ins + s.slice(pos + del)
  }
  return s
}

const SURROGATE_RE = /[\uD800-\uDFFF]/

function applySplices(text: string, splices: readonly TextSplice[]): string {
  let s = text
  for (const [pos, del, ins] of splices) s = s.slice(0, pos) + ins + s.slice(pos + del)
  return s
}

/**
 * Checks `splices` against `text` as {@link spliceString} does, without building the result
 * (`surrogates`: whether the text may hold one, when already known).
 */
function checkSplices(text: string, splices: readonly TextSplice[], surrogates = SURROGATE_RE.test(text)): void {
  if (!checkedWithoutSurrogates(text, surrogates, splices)) spliceString(text, splices)
}

/**
 * The fast path, and the common case: with no surrogate anywhere, only lengths need checking and
 * no intermediate string is built, so long edit batches on long texts stay linear. Returns false
 * (having checked nothing) when a surrogate is present; throws `TEXT_RANGE` like spliceString.
 */
function checkedWithoutSurrogates(text: string, surrogates: boolean, splices: readonly TextSplice[]): boolean {
  if (surrogates || !splices.every(([, , ins]) => typeof ins === 'string' && !SURROGATE_RE.test(ins))) return false
  let length = text.length
  for (const [pos, del, ins] of splices) {
    if (!Number.isSafeInteger(pos) || !Number.isSafeInteger(del) || pos < 0 || del < 0 || pos + del > length) {
      throw new ValidationError('TEXT_RANGE', `splice [${pos}, ${del}] is outside the text (length ${length})`)
    }
    length += ins.length - del
  }
  return true
}

function splitsSurrogatePair(s: string, i: number): boolean {
  if (i <= 0 || i >= s.length) return false
  const before = s.charCodeAt(i - 1)
  const after = s.charCodeAt(i)
  return before >= 0xd800 && before <= 0xdbff && after >= 0xdc00 && after <= 0xdfff
}

/**
 * Applies splices to a text root, in order. Every splice is checked against the text as the
 * previous ones left it (see {@link spliceString}); a refused splice throws `TEXT_RANGE` or
 * `INVALID_TEXT` and nothing is applied.
 */
export function spliceText(doc: Y.Doc, name: string, splices: readonly TextSplice[]): EntityEdit {
  assertTextRoot(name)
  const before = textView(doc, name)
  checkSplices(before.text, splices, before.surrogates)
  const result = edit(doc, (_fields, texts) => {
    const text = doc.getText(name)
    for (const [pos, del, ins] of splices) {
      if (del > 0) text.delete(pos, del)
      if (ins.length > 0) text.insert(pos, ins)
    }
    texts.add(name)
  })
  // The text after the splices, without walking the document again (a long text takes one small
  // splice per commit): kept only when this edit was the document's latest transaction, and the
  // root holds nothing but characters (an embed counts in Yjs positions, not in the string). Each
  // splice copies the string, so a long batch leaves it to be built once by the next read.
  const tx = transactions.get(doc)
  const root = doc.getText(name)
  if (tx !== undefined && tx === before.tx + 1 && splices.length <= INCREMENTAL_SPLICES) {
    const text = applySplices(before.text, splices)
    if (root.length === text.length) textViews.set(root, { tx, text, surrogates: before.surrogates || splices.some(([, , ins]) => SURROGATE_RE.test(ins)) })
  }
  return result
}

/**
 * Empties the document (every field and every text), as the first step of writing to a deleted
 * entity, so that a write after a delete starts from nothing.
 */
export function clearEntity(doc: Y.Doc): EntityEdit {
  return edit(doc, (fields, texts) => {
    const data = doc.getMap(DATA_ROOT)
    for (const key of [...data.keys()]) {
      data.delete(key)
      fields.add(key)
    }
    for (const name of textNames(doc)) {
      const text = doc.getText(name)
      if (text.length > 0) {
        text.delete(0, text.length)
        texts.add(name)
      }
    }
  })
}

/**
 * The values a change's Yjs update wrote to the record's fields: for each of `fields`, the value
 * of the update's last item for that key, or null when the update only removed the field. Call it
 * after the update is applied to `doc`: an update does not always name the key of an item (Yjs
 * omits it when the item has a left neighbour), the integrated item does; the value comes from
 * the update, because the document keeps only the merged winner of concurrent sets.
 */
export function writtenFieldValues(doc: Y.Doc, update: Uint8Array, fields: readonly string[]): Record<string, JsonValue | null> {
  const out: Record<string, JsonValue | null> = {}
  for (const f of fields) out[f] = null
  if (update.length === 0 || fields.length === 0) return out
  const data = doc.getMap(DATA_ROOT)
  const wanted = new Set(fields)
  const clocks: Record<string, number> = {}
  for (const struct of Y.decodeUpdate(update).structs) {
    if (!(struct instanceof Y.Item)) continue
    const integrated = Y.getItem(doc.store, struct.id)
    if (!(integrated instanceof Y.Item) || integrated.parent !== data || integrated.parentSub === null) continue
    const key = integrated.parentSub
    if (!wanted.has(key) || (clocks[key] !== undefined && clocks[key] > struct.id.clock)) continue
    clocks[key] = struct.id.clock
    const content = struct.content.getContent()
    out[key] = (content[content.length - 1] ?? null) as JsonValue | null
  }
  return out
}

/** Applies a remote Yjs update (idempotent: applying it twice changes nothing). */
export function applyEntityUpdate(doc: Y.Doc, update: Uint8Array): void {
  if (update.length > 0) Y.applyUpdate(doc, update)
}

/** True when the document has updates waiting for missing dependencies. */
export function hasPendingUpdates(doc: Y.Doc): boolean {
  return doc.store.pendingStructs !== null || doc.store.pendingDs !== null
}

/** Runs `body` in one transaction and captures the update it produced. */
function edit(doc: Y.Doc, body: (fields: Set<string>, texts: Set<string>) => void): EntityEdit {
  const fields = new Set<string>()
  const texts = new Set<string>()
  let update: Uint8Array | null = null
  const onUpdate = (u: Uint8Array): void => {
    update = update === null ? u : Y.mergeUpdates([update, u])
  }
  doc.on('update', onUpdate)
  try {
    doc.transact(() => body(fields, texts))
  } finally {
    doc.off('update', onUpdate)
  }
  return { update, fields: [...fields].sort(), texts: [...texts].sort() }
}

function assertTextRoot(name: string): void {
  assertTextName(name)
  if (name === DATA_ROOT) throw new ValidationError('INVALID_TEXT_NAME', `text name "${DATA_ROOT}" is reserved`)
}

function setIfChanged(data: Y.Map<unknown>, key: string, value: JsonValue, fields: Set<string>): void {
  if (data.has(key) && jsonEqual(data.get(key) as JsonValue, value)) return
  data.set(key, value)
  fields.add(key)
}

/** Structural equality of JSON values (object key order ignored). */
export function jsonEqual(a: JsonValue, b: JsonValue): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false
    return a.every((v, i) => jsonEqual(v, b[i] as JsonValue))
  }
  const ka = Object.keys(a)
  if (ka.length !== Object.keys(b).length) return false
  return ka.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k] as JsonValue, b[k] as JsonValue))
}
