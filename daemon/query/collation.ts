/**
 * The total order of JSON values that queries sort and compare by (docs/queries.md, Collation),
 * and an order-preserving string encoding of it for index keys: for any two values, comparing
 * their encodings as strings (UTF-16 code units, which for the characters used here is also
 * UTF-8 byte order, LevelDB's) gives the same answer as {@link compareJson}.
 *
 * Order: missing < null < false < true < numbers < strings < arrays < objects. Numbers by value;
 * strings by Unicode code point; arrays element by element, a shorter prefix first; objects by
 * their entries in key order (key, then value), a shorter prefix first.
 */
import type { JsonValue } from '../../crdt/index.ts'

/** A value as a query sees it: `undefined` is a missing field. */
export type Collatable = JsonValue | undefined

const utf8 = new TextEncoder()

/** The rank of a value's type in the collation. */
export function typeRank(v: Collatable): number {
  if (v === undefined) return 0
  if (v === null) return 1
  if (v === false) return 2
  if (v === true) return 3
  if (typeof v === 'number') return 4
  if (typeof v === 'string') return 5
  if (Array.isArray(v)) return 6
  return 7
}

/** Strings by code point (= UTF-8 byte order). */
export function compareStrings(a: string, b: string): number {
  if (a === b) return 0
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))
}

/** Object keys in collation order. */
export function sortedKeys(o: Readonly<Record<string, JsonValue>>): string[] {
  return Object.keys(o).sort(compareStrings)
}

/** Negative, zero or positive as `a` sorts before, with or after `b`. */
export function compareJson(a: Collatable, b: Collatable): number {
  const ra = typeRank(a)
  const rb = typeRank(b)
  if (ra !== rb) return ra - rb
  switch (ra) {
    case 4:
      return (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0
    case 5:
      return compareStrings(a as string, b as string)
    case 6: {
      const x = a as JsonValue[]
      const y = b as JsonValue[]
      for (let i = 0; i < Math.min(x.length, y.length); i++) {
        const c = compareJson(x[i], y[i])
        if (c !== 0) return c
      }
      return x.length - y.length
    }
    case 7: {
      const x = a as Record<string, JsonValue>
      const y = b as Record<string, JsonValue>
      const kx = sortedKeys(x)
      const ky = sortedKeys(y)
      for (let i = 0; i < Math.min(kx.length, ky.length); i++) {
        const c = compareStrings(kx[i] as string, ky[i] as string) || compareJson(x[kx[i] as string], y[ky[i] as string])
        if (c !== 0) return c
      }
      return kx.length - ky.length
    }
    default:
      return 0
  }
}

// ---- encoding ---------------------------------------------------------------------------------
// Every encoding is prefix-free (no encoding is a proper prefix of another), uses only characters
// U+0001..U+0101, and so can be concatenated into tuples and inverted (for a descending part)
// character by character. Characters after an encoding in a key are at most MAX_CHAR, so
// `e + AFTER` is above every key that starts with the encoding `e`.

const END = '\u0001'
const TAG = { missing: '\u000f', null: '\u0010', false: '\u0011', true: '\u0012', number: '\u0013', string: '\u0014', array: '\u0015', object: '\u0016' } as const
/** Larger than every character an (ascending or inverted) encoding uses. */
export const AFTER = '\u01ff'
const INVERT_BASE = 0x1ff

function encodeNumber(n: number): string {
  const view = new DataView(new ArrayBuffer(8))
  view.setFloat64(0, n === 0 ? 0 : n) // -0 is 0
  let hi = view.getUint32(0)
  let lo = view.getUint32(4)
  if (hi & 0x80000000) {
    hi = ~hi >>> 0
    lo = ~lo >>> 0
  } else hi = (hi | 0x80000000) >>> 0
  return TAG.number + hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0')
}

function encodeStringBody(s: string): string {
  let out = ''
  for (const b of utf8.encode(s)) out += String.fromCharCode(b + 2)
  return out
}

/** The ascending encoding of one value (`undefined`: a missing field). */
export function encodeJson(v: Collatable): string {
  if (v === undefined) return TAG.missing
  if (v === null) return TAG.null
  if (v === false) return TAG.false
  if (v === true) return TAG.true
  if (typeof v === 'number') return encodeNumber(v)
  if (typeof v === 'string') return TAG.string + encodeStringBody(v) + END
  if (Array.isArray(v)) return TAG.array + v.map(encodeJson).join('') + END
  const o = v as Record<string, JsonValue>
  return TAG.object + sortedKeys(o).map((k) => TAG.string + encodeStringBody(k) + END + encodeJson(o[k])).join('') + END
}

/** The encoding read backwards in order: character by character inverted. */
export function invert(encoded: string): string {
  let out = ''
  for (let i = 0; i < encoded.length; i++) out += String.fromCharCode(INVERT_BASE - encoded.charCodeAt(i))
  return out
}

export type Direction = 'asc' | 'desc'

/** One value's encoding in a direction. */
export function encodeDirected(v: Collatable, dir: Direction): string {
  const e = encodeJson(v)
  return dir === 'asc' ? e : invert(e)
}

/** The encoding of a tuple of values, each in its direction. */
export function encodeTuple(values: readonly Collatable[], dirs: readonly Direction[]): string {
  return values.map((v, i) => encodeDirected(v, dirs[i] ?? 'asc')).join('')
}

/** Half-open range [gte, lt) of the ascending encodings of the type class of `v` (booleans: both). */
export function classRange(v: Collatable): { gte: string; lt: string } {
  const r = typeRank(v)
  if (r === 2 || r === 3) return { gte: TAG.false, lt: TAG.true + AFTER }
  const tag = encodeJson(v).slice(0, 1)
  return { gte: tag, lt: tag + AFTER }
}

/** Half-open range of the ascending encodings of the strings starting with `prefix`. */
export function prefixRange(prefix: string): { gte: string; lt: string } {
  const start = TAG.string + encodeStringBody(prefix)
  return { gte: start, lt: start + AFTER }
}

/** {@link classRange} in a direction's encoding. */
export function classRangeDirected(v: Collatable, dir: Direction): { gte: string; lt: string } {
  if (dir === 'asc') return classRange(v)
  const r = typeRank(v)
  if (r === 2 || r === 3) return { gte: invert(TAG.true), lt: invert(TAG.false) + AFTER }
  const tag = invert(encodeJson(v).slice(0, 1))
  return { gte: tag, lt: tag + AFTER }
}

/** {@link prefixRange} in a direction's encoding. */
export function prefixRangeDirected(prefix: string, dir: Direction): { gte: string; lt: string } {
  const r = prefixRange(prefix)
  if (dir === 'asc') return r
  const start = invert(r.gte)
  return { gte: start, lt: start + AFTER }
}
