import { ValidationError, type JsonRecord } from '../../crdt/index.ts'

/** Deepest nesting of objects and arrays in a record (the record itself is level 1). */
export const MAX_RECORD_DEPTH = 100

/**
 * Throws `INVALID_RECORD` when a record nests deeper than {@link MAX_RECORD_DEPTH}, or holds a
 * number JSON cannot carry back (`JSON.parse` turns `1e400` into Infinity, which would be stored
 * and served as `null`). Iterative, so a hostile depth cannot overflow the stack; the store runs
 * it before a write is queued, so a refused record never reaches (and never fails) a group commit.
 */
export function assertRecordLimits(record: JsonRecord): void {
  const stack: [unknown, number][] = [[record, 1]]
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const [value, depth] = next
    if (typeof value === 'number' && !Number.isFinite(value)) {
      throw new ValidationError('INVALID_RECORD', 'numbers in a record must be finite')
    }
    if (value === null || typeof value !== 'object') continue
    if (depth > MAX_RECORD_DEPTH) throw new ValidationError('INVALID_RECORD', `records nest at most ${MAX_RECORD_DEPTH} levels deep`)
    for (const child of Array.isArray(value) ? value : Object.values(value)) stack.push([child, depth + 1])
  }
}
