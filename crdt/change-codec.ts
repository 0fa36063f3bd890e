import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import type { ChangeOp, ChangeRecord } from './change-record.ts'
import { CodecError } from './errors.ts'
import { encodeReusing } from './pooled-encoder.ts'
import { isValidEntityId, isValidNamespace, isValidNodeId, isWellFormed, utf8ByteLength } from './names.ts'
import { parseVersionVector, readBoundedUint, readBytes, readString, readVersionVector, writeVersionVector } from './version-vector.ts'

/** First byte of every encoded change record; bump when the layout changes. */
export const CHANGE_FORMAT_VERSION = 1
/** Largest Yjs update one change record may carry. */
export const MAX_UPDATE_BYTES = 16 * 1024 * 1024
/** Most fields or texts one change record may name. */
export const MAX_FIELDS = 10_000
/** Longest field name, in UTF-8 bytes. */
export const MAX_FIELD_NAME_BYTES = 1024

const OP_CODES: Record<ChangeOp, number> = { upsert: 1, delete: 2 }
/** Op code of an upsert that starts a new incarnation (`fresh`). */
const OP_FRESH_UPSERT = 3

/**
 * Encodes a change record:
 * `version u8 | origin str | seq varuint | ns str | id str | op u8 | context vv |
 *  fields (count, str...) | texts (count, str...) | time varuint | update (len, bytes)`.
 * The op byte is 1 (upsert), 2 (delete) or 3 (upsert starting a new incarnation: `fresh`).
 * Strings are lib0 var-strings (varuint length + UTF-8). `fields` and `texts` are written sorted
 * and unique, `time` floored (negative as 0). Throws {@link CodecError} on a change that
 * {@link decodeChange} would refuse or read back differently, rather than writing it.
 */
export function encodeChange(change: ChangeRecord): Uint8Array {
  assertEncodable(change)
  return encodeReusing((e) => {
    encoding.writeUint8(e, CHANGE_FORMAT_VERSION)
    encoding.writeVarString(e, change.origin)
    encoding.writeVarUint(e, change.seq)
    encoding.writeVarString(e, change.ns)
    encoding.writeVarString(e, change.id)
    encoding.writeUint8(e, change.fresh === true ? OP_FRESH_UPSERT : OP_CODES[change.op])
    writeVersionVector(e, change.context)
    writeStrings(e, change.fields)
    writeStrings(e, change.texts)
    encoding.writeVarUint(e, Math.max(0, Math.floor(change.time)))
    encoding.writeVarUint8Array(e, change.update)
  })
}

/**
 * Decodes and validates a change record. Every defect (truncation, bad names, unsorted lists,
 * oversized parts, unknown version, trailing bytes) throws {@link CodecError}; nothing else is
 * thrown.
 */
export function decodeChange(bytes: Uint8Array): ChangeRecord {
  if (!(bytes instanceof Uint8Array)) throw new CodecError('change record must be bytes')
  const d = decoding.createDecoder(bytes)
  const version = readU8(d, 'format version')
  if (version !== CHANGE_FORMAT_VERSION) throw new CodecError(`unsupported change format version ${version}`)
  const origin = readString(d, 'origin', 64)
  if (!isValidNodeId(origin)) throw new CodecError('invalid origin node id')
  const seq = readBoundedUint(d, Number.MAX_SAFE_INTEGER, 'seq')
  if (seq < 1) throw new CodecError('seq must be >= 1')
  const ns = readString(d, 'namespace', 64)
  if (!isValidNamespace(ns)) throw new CodecError('invalid namespace')
  const id = readString(d, 'entity id', 1024)
  if (!isValidEntityId(id)) throw new CodecError('invalid entity id')
  const opCode = readU8(d, 'op')
  const op: ChangeOp | undefined = opCode === 1 || opCode === OP_FRESH_UPSERT ? 'upsert' : opCode === 2 ? 'delete' : undefined
  if (op === undefined) throw new CodecError(`unknown op code ${opCode}`)
  const context = readVersionVector(d)
  const fields = readStrings(d, 'fields')
  const texts = readStrings(d, 'texts')
  if (!texts.every(isValidNamespace)) throw new CodecError('invalid text name')
  const time = readBoundedUint(d, Number.MAX_SAFE_INTEGER, 'time')
  const update = readBytes(d, 'update', MAX_UPDATE_BYTES)
  if (decoding.hasContent(d)) throw new CodecError('trailing bytes after change record')
  if (op === 'delete' && (fields.length > 0 || texts.length > 0 || update.length > 0)) {
    throw new CodecError('a delete carries no fields, texts or update')
  }
  const change: ChangeRecord = { origin, seq, ns, id, op, context, fields, texts, update, time }
  return opCode === OP_FRESH_UPSERT ? { ...change, fresh: true } : change
}

/** The checks {@link decodeChange} makes, applied before encoding. */
function assertEncodable(c: ChangeRecord): void {
  const refuse = (what: string): never => {
    throw new CodecError(`cannot encode change: ${what}`)
  }
  if (!isValidNodeId(c.origin)) refuse('invalid origin node id')
  if (!Number.isSafeInteger(c.seq) || c.seq < 1) refuse('seq must be a safe integer >= 1')
  if (!isValidNamespace(c.ns)) refuse('invalid namespace')
  if (!isValidEntityId(c.id)) refuse('invalid entity id')
  if (!Object.hasOwn(OP_CODES, c.op)) refuse('unknown op')
  if (c.fresh !== undefined && (c.fresh !== true || c.op !== 'upsert')) refuse('only an upsert can be fresh')
  parseVersionVector(c.context)
  const fields = new Set(c.fields)
  const texts = new Set(c.texts)
  if (fields.size > MAX_FIELDS || texts.size > MAX_FIELDS) refuse('too many fields or texts')
  for (const f of fields) {
    if (typeof f !== 'string' || !isWellFormed(f)) refuse('field name is not well-formed text')
    if (f.length * 3 > MAX_FIELD_NAME_BYTES && utf8ByteLength(f) > MAX_FIELD_NAME_BYTES) refuse('field name too long')
  }
  for (const t of texts) if (!isValidNamespace(t)) refuse('invalid text name')
  if (!Number.isSafeInteger(Math.max(0, Math.floor(c.time)))) refuse('time must be a safe integer')
  if (!(c.update instanceof Uint8Array) || c.update.length > MAX_UPDATE_BYTES) refuse('update must be at most MAX_UPDATE_BYTES bytes')
  if (c.op === 'delete' && (fields.size > 0 || texts.size > 0 || c.update.length > 0)) {
    refuse('a delete carries no fields, texts or update')
  }
}

function writeStrings(e: encoding.Encoder, values: readonly string[]): void {
  const sorted = [...new Set(values)].sort()
  encoding.writeVarUint(e, sorted.length)
  for (const v of sorted) encoding.writeVarString(e, v)
}

function readStrings(d: decoding.Decoder, what: string): string[] {
  const n = readBoundedUint(d, MAX_FIELDS, `${what} count`)
  const out: string[] = []
  for (let i = 0; i < n; i++) {
    const s = readString(d, what, MAX_FIELD_NAME_BYTES)
    if (i > 0 && s <= (out[i - 1] as string)) throw new CodecError(`${what} are not sorted and unique`)
    out.push(s)
  }
  return out
}

function readU8(d: decoding.Decoder, what: string): number {
  if (d.pos >= d.arr.length) throw new CodecError(`truncated ${what}`)
  return decoding.readUint8(d)
}
