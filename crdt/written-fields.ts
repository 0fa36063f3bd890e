import * as Y from 'yjs'
import { DATA_ROOT, type JsonValue } from './entity-doc.ts'

/** The values one change wrote to the record's fields, as far as they can be read back. */
export interface FieldWrites {
  /** For each field whose write was read back: the value written (null: the change removed it). */
  readonly values: Record<string, JsonValue | null>
  /** Fields the change wrote whose value cannot be read back (see {@link fieldWrites}). */
  readonly unknown: string[]
}

/**
 * The values a change's Yjs update (V1) wrote to `fields`, read back after the fact (an entity's
 * history, docs/history.md): for each field, the value of the update's last item for that key, or
 * null when the update only removed the field (or removed what it set). An update names the key
 * of an item only when the item has no left or right origin (the first value a document gives a
 * key); for the others the key is looked up in `doc`, a document that holds the item: the
 * entity's document of the incarnation the change was made on. A field whose item cannot be told
 * apart there (no such document, or the item is not in it) is reported `unknown`, never guessed.
 */
export function fieldWrites(update: Uint8Array, fields: readonly string[], doc: Y.Doc | undefined): FieldWrites {
  const values: Record<string, JsonValue | null> = {}
  if (fields.length === 0) return { values, unknown: [] }
  if (update.length === 0) {
    for (const f of fields) values[f] = null
    return { values, unknown: [] }
  }
  const wanted = new Set(fields)
  const decoded = Y.decodeUpdate(update)
  const data = doc?.getMap(DATA_ROOT)
  const clocks = new Map<string, number>()
  /** Fields whose last item found was removed within the update. */
  const overwritten = new Set<string>()
  let unresolved = false
  for (const struct of decoded.structs) {
    if (!(struct instanceof Y.Item)) continue
    // A decoded item's parent is a root's name (a string) or the id of a nested type.
    const parent = struct.parent as unknown
    let key: string
    if (struct.parentSub !== null) {
      if (parent !== DATA_ROOT) continue // a key of a nested type, or of another root
      key = struct.parentSub
    } else if (parent !== null) {
      continue // keyless with a named parent: an element of a text or array root
    } else {
      const found = data && doc ? integrated(doc, struct.id) : undefined
      if (found === undefined) {
        unresolved = true
        continue
      }
      if (found.parent !== data || found.parentSub === null) continue
      key = found.parentSub
    }
    if (!wanted.has(key)) continue
    const previous = clocks.get(key)
    if (previous !== undefined && previous > struct.id.clock) continue
    clocks.set(key, struct.id.clock)
    const content = struct.content.getContent()
    const last = Y.createID(struct.id.client, struct.id.clock + struct.length - 1)
    const removed = content.length === 0 || Y.isDeleted(decoded.ds, last)
    if (removed) overwritten.add(key)
    else overwritten.delete(key)
    const value = removed ? null : (content[content.length - 1] as unknown)
    values[key] = value instanceof Y.AbstractType ? (value.toJSON() as JsonValue) : ((value ?? null) as JsonValue | null)
  }
  const unknown: string[] = []
  for (const f of fields) {
    // No item for the field, or its last one removed within the update: the change removed it,
    // unless some item could not be placed (it may be the field's later value).
    if (unresolved && (!Object.hasOwn(values, f) || overwritten.has(f))) {
      delete values[f]
      unknown.push(f)
    } else if (!Object.hasOwn(values, f)) values[f] = null
  }
  return { values, unknown }
}

/** The item `id` as integrated in `doc`, or undefined when the document does not hold it. */
function integrated(doc: Y.Doc, id: Y.ID): Y.Item | undefined {
  if (Y.getState(doc.store, id.client) <= id.clock) return undefined
  const item = Y.getItem(doc.store, id)
  return item instanceof Y.Item ? item : undefined
}
