import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { assertRecord, DATA_ROOT, type EntityEdit, type JsonRecord } from './entity-doc.ts'
import { encodeReusing } from './pooled-encoder.ts'

/** A new entity's first write, made without building a Y.Doc. */
export interface FreshRecordEdit {
  readonly edit: EntityEdit
  /** The record the document would hold after the edit. */
  readonly value: JsonRecord
  /** The document's encoded state after the edit (what `Y.encodeStateAsUpdate` would give). */
  readonly state: Uint8Array
}

/** `Y.encodeStateAsUpdate` of an empty document: no structs, no deletes. */
const EMPTY_STATE = new Uint8Array([0, 0])

// Yjs V1 update layout (yjs/src/utils/encoding.js, Item.write): an item's info byte holds its
// content type in the low 5 bits and flags for what follows.
const CONTENT_ANY = 8
const HAS_PARENT_SUB = 0x20
/** writeParentInfo(true): the parent is a root type, named by its key. */
const PARENT_IS_ROOT_KEY = 1

/**
 * The edit `replaceRecord` (`put`) or `patchRecord` (`patch`) makes on an empty document whose
 * client id is `clientID`, computed without a Y.Doc: the same Yjs update byte for byte, which on
 * an empty document is also its whole state. One map item per field at clocks 0, 1, ... in the
 * record's key order, each a ContentAny of the value, no deletes (a patch's nulls remove nothing
 * that exists). The property tests check it against Yjs itself. Throws `INVALID_RECORD` like
 * `replaceRecord`.
 *
 * Creating, editing and encoding a Y.Doc is most of what a new entity's write costs; inserts are
 * the commonest write.
 */
export function freshRecordEdit(clientID: number, record: JsonRecord, mode: 'put' | 'patch'): FreshRecordEdit {
  assertRecord(record)
  const entries = mode === 'put' ? Object.entries(record) : Object.entries(record).filter(([, v]) => v !== null)
  if (entries.length === 0) return { edit: { update: null, fields: [], texts: [] }, value: {}, state: EMPTY_STATE }
  const update = encodeReusing((e) => {
    encoding.writeVarUint(e, 1) // clients
    encoding.writeVarUint(e, entries.length) // structs of this client
    encoding.writeVarUint(e, clientID)
    encoding.writeVarUint(e, 0) // clock of the first
    for (const [key, value] of entries) {
      encoding.writeUint8(e, CONTENT_ANY | HAS_PARENT_SUB) // no left or right origin
      encoding.writeVarUint(e, PARENT_IS_ROOT_KEY)
      encoding.writeVarString(e, DATA_ROOT)
      encoding.writeVarString(e, key)
      encoding.writeVarUint(e, 1) // content length
      encoding.writeAny(e, value)
    }
    encoding.writeVarUint(e, 0) // delete set: no clients
  })
  return {
    edit: { update, fields: entries.map(([key]) => key).sort(), texts: [] },
    value: Object.fromEntries(entries),
    state: update,
  }
}

/**
 * The record a Yjs update writes when it is exactly what {@link freshRecordEdit} makes in `put`
 * mode (a new entity's first write, from any node): its client id and record. Undefined for every
 * other update (any other shape, a record `replaceRecord` would refuse, trailing bytes); those
 * take the Y.Doc path. The answer is checked by encoding the record again and comparing bytes, so
 * a decoded record always means: applying `update` to an empty document gives this record and a
 * state equal to `update`.
 */
export function decodeFreshRecord(update: Uint8Array): { readonly clientID: number; readonly value: JsonRecord } | undefined {
  try {
    const d = decoding.createDecoder(update)
    if (decoding.readVarUint(d) !== 1) return undefined
    const count = decoding.readVarUint(d)
    const clientID = decoding.readVarUint(d)
    if (count === 0 || decoding.readVarUint(d) !== 0) return undefined
    const entries: [string, unknown][] = []
    for (let i = 0; i < count; i++) {
      if (decoding.readUint8(d) !== (CONTENT_ANY | HAS_PARENT_SUB) || decoding.readVarUint(d) !== PARENT_IS_ROOT_KEY) return undefined
      if (decoding.readVarString(d) !== DATA_ROOT) return undefined
      const key = decoding.readVarString(d)
      if (decoding.readVarUint(d) !== 1) return undefined
      entries.push([key, decoding.readAny(d)])
    }
    const value = Object.fromEntries(entries) as JsonRecord
    if (Object.keys(value).length !== count) return undefined // a key twice: the later item wins in Yjs
    const again = freshRecordEdit(clientID, value, 'put').edit.update
    if (again === null || again.length !== update.length || !again.every((b, i) => b === update[i])) return undefined
    return { clientID, value }
  } catch {
    return undefined
  }
}
