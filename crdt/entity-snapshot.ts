import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { advanceHeads, isDeletedByHeads, type Head } from './causality.ts'
import type { Dot } from './change-record.ts'
import { MAX_FIELD_NAME_BYTES, MAX_FIELDS, MAX_UPDATE_BYTES } from './change-codec.ts'
import type { JsonValue } from './entity-doc.ts'
import { CodecError } from './errors.ts'
import { encodeReusing } from './pooled-encoder.ts'
import type { FieldHeads, FieldWrite } from './field-heads.ts'
import { isValidEntityId, isValidNamespace, isValidNodeId } from './names.ts'
import { merge, readBoundedUint, readBytes, readString, readVersionVector, writeVersionVector, type VersionVector } from './version-vector.ts'

/**
 * An entity's whole replicated state, as one node holds it: its Yjs state and its causal
 * metadata. Used when shipping state is cheaper than shipping history (a new or long-offline
 * node), and merged idempotently on arrival.
 */
export interface EntitySnapshot {
  readonly ns: string
  readonly id: string
  /** Full Yjs state (V1 update). */
  readonly state: Uint8Array
  readonly vv: VersionVector
  readonly heads: readonly Head[]
  readonly fieldHeads: FieldHeads
  readonly updatedAt: number
  /** The fresh change that started the entity's current incarnation (absent: its first one). */
  readonly incarnation?: Dot
}

/** Most heads an entity snapshot may carry (one per concurrent writer). */
export const MAX_HEADS = 1024

export function encodeEntitySnapshot(s: EntitySnapshot): Uint8Array {
  return encodeReusing((e) => writeEntitySnapshot(e, s))
}

function writeEntitySnapshot(e: encoding.Encoder, s: EntitySnapshot): void {
  // Version 2 adds the incarnation at the end; version 1 (no incarnation) is still written when
  // there is none, so older readers and backups keep working.
  encoding.writeUint8(e, s.incarnation ? 2 : 1)
  encoding.writeVarString(e, s.ns)
  encoding.writeVarString(e, s.id)
  encoding.writeVarUint8Array(e, s.state)
  writeVersionVector(e, s.vv)
  encoding.writeVarUint(e, Math.max(0, Math.floor(s.updatedAt)))
  encoding.writeVarUint(e, s.heads.length)
  for (const h of s.heads) {
    encoding.writeVarString(e, h.origin)
    encoding.writeVarUint(e, h.seq)
    encoding.writeUint8(e, h.op === 'delete' ? 2 : 1)
    writeVersionVector(e, h.context)
    encoding.writeVarUint(e, h.fields.length)
    for (const f of h.fields) encoding.writeVarString(e, f)
  }
  const fields = Object.keys(s.fieldHeads)
  encoding.writeVarUint(e, fields.length)
  for (const field of fields) {
    const writes = s.fieldHeads[field] ?? []
    encoding.writeVarString(e, field)
    encoding.writeVarUint(e, writes.length)
    for (const w of writes) {
      encoding.writeVarString(e, w.origin)
      encoding.writeVarUint(e, w.seq)
      encoding.writeUint8(e, w.value === undefined ? 0 : 1)
      if (w.value !== undefined) encoding.writeVarString(e, JSON.stringify(w.value))
    }
  }
  if (s.incarnation) {
    encoding.writeVarString(e, s.incarnation.origin)
    encoding.writeVarUint(e, s.incarnation.seq)
  }
}

/** Decodes and validates an entity snapshot; throws {@link CodecError} on any defect. */
export function decodeEntitySnapshot(bytes: Uint8Array): EntitySnapshot {
  const d = decoding.createDecoder(bytes)
  const version = bytes.length === 0 ? 0 : decoding.readUint8(d)
  if (version !== 1 && version !== 2) throw new CodecError('unsupported entity snapshot version')
  const ns = readString(d, 'namespace', 64)
  if (!isValidNamespace(ns)) throw new CodecError('invalid namespace')
  const id = readString(d, 'entity id', 1024)
  if (!isValidEntityId(id)) throw new CodecError('invalid entity id')
  const state = readBytes(d, 'state', MAX_UPDATE_BYTES * 4)
  const vv = readVersionVector(d)
  const updatedAt = readBoundedUint(d, Number.MAX_SAFE_INTEGER, 'updatedAt')
  const count = readBoundedUint(d, MAX_HEADS, 'head count')
  const heads: Head[] = []
  for (let i = 0; i < count; i++) {
    const origin = readString(d, 'head origin', 64)
    if (!isValidNodeId(origin)) throw new CodecError('invalid head origin')
    const seq = readBoundedUint(d, Number.MAX_SAFE_INTEGER, 'head seq')
    if (seq < 1) throw new CodecError('head seq must be >= 1')
    if (d.pos >= d.arr.length) throw new CodecError('truncated head op')
    const opCode = decoding.readUint8(d)
    if (opCode !== 1 && opCode !== 2) throw new CodecError('invalid head op')
    const context = readVersionVector(d)
    const nFields = readBoundedUint(d, MAX_FIELDS, 'head field count')
    const fields: string[] = []
    for (let j = 0; j < nFields; j++) fields.push(readString(d, 'head field', MAX_FIELD_NAME_BYTES))
    heads.push({ origin, seq, op: opCode === 2 ? 'delete' : 'upsert', context, fields })
  }
  const fieldHeads: Record<string, FieldWrite[]> = Object.create(null) as Record<string, FieldWrite[]>
  const nFieldHeads = readBoundedUint(d, MAX_FIELDS, 'field head count')
  for (let i = 0; i < nFieldHeads; i++) {
    const field = readString(d, 'field name', MAX_FIELD_NAME_BYTES)
    const nWrites = readBoundedUint(d, MAX_HEADS, 'field write count')
    const writes: FieldWrite[] = []
    for (let j = 0; j < nWrites; j++) {
      const origin = readString(d, 'field write origin', 64)
      if (!isValidNodeId(origin)) throw new CodecError('invalid field write origin')
      const seq = readBoundedUint(d, Number.MAX_SAFE_INTEGER, 'field write seq')
      if (d.pos >= d.arr.length) throw new CodecError('truncated field write')
      const hasValue = decoding.readUint8(d)
      if (hasValue > 1) throw new CodecError('invalid field write flag')
      if (hasValue === 0) {
        writes.push({ origin, seq })
        continue
      }
      let value: JsonValue | null
      try {
        value = JSON.parse(readString(d, 'field write value', MAX_UPDATE_BYTES)) as JsonValue | null
      } catch (cause) {
        if (cause instanceof CodecError) throw cause
        throw new CodecError('field write value is not JSON', { cause })
      }
      writes.push({ origin, seq, value })
    }
    fieldHeads[field] = writes
  }
  let incarnation: Dot | undefined
  if (version === 2) {
    const origin = readString(d, 'incarnation origin', 64)
    if (!isValidNodeId(origin)) throw new CodecError('invalid incarnation origin')
    const seq = readBoundedUint(d, Number.MAX_SAFE_INTEGER, 'incarnation seq')
    if (seq < 1) throw new CodecError('incarnation seq must be >= 1')
    incarnation = { origin, seq }
  }
  if (decoding.hasContent(d)) throw new CodecError('trailing bytes after entity snapshot')
  const snapshot: EntitySnapshot = { ns, id, state, vv, heads, fieldHeads: { ...fieldHeads }, updatedAt }
  return incarnation ? { ...snapshot, incarnation } : snapshot
}

/**
 * Causal metadata of an entity after merging another replica's snapshot into it: vectors merge
 * pointwise, heads become the maximal elements of both sets. Order-free and idempotent.
 */
export function mergeEntityMeta(
  local: { readonly vv: VersionVector; readonly heads: readonly Head[] } | undefined,
  incoming: { readonly vv: VersionVector; readonly heads: readonly Head[] },
): { vv: VersionVector; heads: Head[]; deleted: boolean } {
  let heads: Head[] = [...(local?.heads ?? [])]
  for (const h of incoming.heads) heads = advanceHeads(heads, h)
  const vv = local ? merge(local.vv, incoming.vv) : incoming.vv
  return { vv, heads, deleted: isDeletedByHeads(heads) }
}
