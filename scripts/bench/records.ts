import { randomBytes } from 'node:crypto'

/** Characters of the string field of a record: `{"v":"<90 chars>"}` is 98 bytes of JSON. */
export const VALUE_CHARS = 90

/** A ~100-byte record: random (incompressible) base64url text, so Snappy gains nothing. */
export function makeRecord(): { v: string } {
  return { v: randomBytes(67).toString('base64url').slice(0, VALUE_CHARS) }
}

/** Entity id of the i-th record of a benchmark (fixed width: ids sort like their index). */
export function recordId(prefix: string, i: number): string {
  return `${prefix}${String(i).padStart(8, '0')}`
}

/** Picks `count` distinct indexes of `0..size-1` spread over the whole range (first and last included). */
export function sampleIndexes(size: number, count: number): number[] {
  if (size <= count) return Array.from({ length: size }, (_, i) => i)
  const picked = new Set<number>([0, size - 1])
  while (picked.size < count) picked.add(Math.floor(Math.random() * size))
  return [...picked]
}
