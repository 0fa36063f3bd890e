import { compareDots, happenedBefore, type Head } from './causality.ts'
import { DELETED_FIELD } from './conflicts.ts'
import type { Dot } from './change-record.ts'
import type { JsonValue } from './entity-doc.ts'
import { counterOf, type VersionVector } from './version-vector.ts'

/**
 * A write to one field: the change's dot, and the value it wrote while that value matters (the
 * field has concurrent writers; with a single writer the document holds its value).
 */
export interface FieldWrite extends Dot {
  /** The value written (null: the field was removed). Absent while the write is the field's only head. */
  readonly value?: JsonValue | null
}

/**
 * Per field, the maximal writes to it: the writes no later write to that field has seen. One
 * entry after sequential writes; several after concurrent ones. Order-free and bounded by the
 * number of concurrent writers.
 */
export type FieldHeads = Readonly<Record<string, readonly FieldWrite[]>>

/** A field written by concurrent changes that no later change has seen all of. */
export interface EntityConflict {
  readonly field: string
  readonly writes: readonly (Dot & { readonly value: JsonValue | null; readonly deleted?: true })[]
}

/**
 * Field heads after `change` (which wrote `change.fields`): for each field it wrote, the writes it
 * saw are dropped and it joins. When a concurrent write remains, both carry their values:
 * `before(field)` is the document's value before the change applied (the remaining single
 * head's value), `written(field)` the change's.
 */
export function advanceFieldHeads(
  heads: FieldHeads,
  change: Dot & { readonly context: VersionVector; readonly fields: readonly string[] },
  before: (field: string) => JsonValue | null,
  written: (field: string) => JsonValue | null,
): FieldHeads {
  const next: Record<string, readonly FieldWrite[]> = { ...heads }
  for (const field of change.fields) {
    const kept = (heads[field] ?? []).filter((w) => !happenedBefore(w, change))
    if (kept.length === 0) {
      next[field] = [{ origin: change.origin, seq: change.seq }]
      continue
    }
    const valued = kept.map((w) => (w.value !== undefined ? w : { ...w, value: before(field) }))
    next[field] = [...valued, { origin: change.origin, seq: change.seq, value: written(field) }].sort(compareDots)
  }
  return next
}

/**
 * Field heads of two replicas of an entity, merged. A write only one side has is kept unless the
 * other side has seen it (its vector includes the dot) and dropped it, which it does only for a
 * later write to the same field. Values a merged conflict needs come from `localValue` /
 * `incomingValue` (each side's document before the merge).
 */
export function mergeFieldHeads(
  local: { readonly vv: VersionVector; readonly fieldHeads: FieldHeads },
  incoming: { readonly vv: VersionVector; readonly fieldHeads: FieldHeads },
  localValue: (field: string) => JsonValue | null,
  incomingValue: (field: string) => JsonValue | null,
): FieldHeads {
  const out: Record<string, readonly FieldWrite[]> = {}
  const fields = new Set([...Object.keys(local.fieldHeads), ...Object.keys(incoming.fieldHeads)])
  for (const field of fields) {
    const l = local.fieldHeads[field] ?? []
    const i = incoming.fieldHeads[field] ?? []
    const key = (w: Dot): string => `${w.origin}:${w.seq}`
    const inL = new Map(l.map((w) => [key(w), w]))
    const inI = new Map(i.map((w) => [key(w), w]))
    const merged: FieldWrite[] = []
    for (const w of l) if (inI.has(key(w)) || counterOf(incoming.vv, w.origin) < w.seq) merged.push({ ...w, ...withValue(w, inI.get(key(w))) })
    for (const w of i) if (!inL.has(key(w)) && counterOf(local.vv, w.origin) < w.seq) merged.push(w)
    if (merged.length >= 2) {
      out[field] = merged
        .map((w) => (w.value !== undefined ? w : { ...w, value: inL.has(key(w)) ? localValue(field) : incomingValue(field) }))
        .sort(compareDots)
    } else {
      out[field] = merged.map(({ origin, seq }) => ({ origin, seq }))
    }
  }
  return out
}

function withValue(w: FieldWrite, other: FieldWrite | undefined): Partial<FieldWrite> {
  if (w.value !== undefined) return {}
  return other?.value !== undefined ? { value: other.value } : {}
}

/**
 * The unresolved conflicts of an entity: fields with several concurrent heads that no head of the
 * entity has seen all of (a later write that saw every sibling resolves them), and a delete
 * concurrent with an update ({@link DELETED_FIELD}: the update won the merge).
 */
export function unresolvedConflicts(fieldHeads: FieldHeads, heads: readonly Head[]): EntityConflict[] {
  const out: EntityConflict[] = []
  for (const field of Object.keys(fieldHeads).sort()) {
    const writes = fieldHeads[field] ?? []
    if (writes.length < 2) continue
    if (heads.some((h) => writes.every((w) => happenedBefore(w, h)))) continue
    out.push({ field, writes: writes.map((w) => ({ origin: w.origin, seq: w.seq, value: w.value ?? null })) })
  }
  if (heads.some((h) => h.op === 'delete') && heads.some((h) => h.op === 'upsert')) {
    out.push({
      field: DELETED_FIELD,
      writes: heads.map((h) => (h.op === 'delete' ? { origin: h.origin, seq: h.seq, value: null, deleted: true as const } : { origin: h.origin, seq: h.seq, value: null })),
    })
  }
  return out
}
