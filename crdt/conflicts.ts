import { compareDots, isConcurrent, type Head } from './causality.ts'
import type { Dot } from './change-record.ts'

/** Marker field for a delete concurrent with an update of the same entity. */
export const DELETED_FIELD = '$deleted'

/** A field two or more concurrent changes wrote. */
export interface FieldConflict {
  readonly field: string
  /** The concurrent writers, sorted by dot. */
  readonly dots: readonly Dot[]
}

/**
 * Fields on which two changes conflict: none unless they are concurrent; otherwise the fields
 * both touched, plus {@link DELETED_FIELD} when exactly one of them is a delete (the update wins
 * the merge, and the conflict makes that visible).
 */
export function conflictingFields(a: Head, b: Head): string[] {
  if (!isConcurrent(a, b)) return []
  if (a.op !== b.op) return [DELETED_FIELD]
  if (a.op === 'delete') return []
  const inB = new Set(b.fields)
  return a.fields.filter((f) => inB.has(f)).sort()
}

/**
 * Field-level conflicts among a set of changes (typically an entity's heads plus the changes
 * they replaced that are still concurrent with another head): every field written by two or
 * more mutually concurrent changes, with its writers.
 */
export function detectConflicts(changes: readonly Head[]): FieldConflict[] {
  const byField = new Map<string, Map<string, Dot>>()
  for (let i = 0; i < changes.length; i++) {
    for (let j = i + 1; j < changes.length; j++) {
      const a = changes[i] as Head
      const b = changes[j] as Head
      for (const field of conflictingFields(a, b)) {
        let writers = byField.get(field)
        if (!writers) byField.set(field, (writers = new Map()))
        writers.set(`${a.origin}:${a.seq}`, { origin: a.origin, seq: a.seq })
        writers.set(`${b.origin}:${b.seq}`, { origin: b.origin, seq: b.seq })
      }
    }
  }
  return [...byField.entries()]
    .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
    .map(([field, writers]) => ({
      field,
      dots: [...writers.values()].sort(compareDots),
    }))
}
