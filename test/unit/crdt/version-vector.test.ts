import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  CodecError,
  MAX_VECTOR_ENTRIES,
  canonical,
  compare,
  counterOf,
  decodeVersionVector,
  dominates,
  emptyVector,
  encodeVersionVector,
  includesDot,
  increment,
  isValidNodeId,
  merge,
  parseVersionVector,
  totalCount,
  withCounter,
  type VersionOrder,
  type VersionVector,
} from '../../../crdt/index.ts'
import { counterArb, mutate, mutationArb, nodeIdArb, prng, rawVectorArb, shuffle, vectorArb } from './arbitraries.ts'

const SEED = 42
const RUNS = 500

/** Reference model: pointwise comparison over the union of keys (absent = 0). */
function modelCompare(a: Record<string, number>, b: Record<string, number>): VersionOrder {
  const get = (v: Record<string, number>, k: string): number => (Object.hasOwn(v, k) ? (v[k] as number) : 0)
  let less = false
  let greater = false
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (get(a, k) < get(b, k)) less = true
    if (get(a, k) > get(b, k)) greater = true
  }
  if (less && greater) return 'concurrent'
  if (less) return 'before'
  if (greater) return 'after'
  return 'equal'
}

/** Reference model of merge: pointwise maximum, zeros dropped. */
function modelMerge(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out = new Map<string, number>()
  for (const v of [a, b]) {
    for (const [k, c] of Object.entries(v)) out.set(k, Math.max(out.get(k) ?? 0, c))
  }
  return Object.fromEntries([...out].filter(([, c]) => c > 0))
}

/** Same entries, inserted in a different order (and with extra zero entries). */
function reordered(vv: Record<string, number>, seed: number, zeros: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [k, c] of shuffle(Object.entries(vv), prng(seed))) Object.defineProperty(out, k, { value: c, enumerable: true, writable: true, configurable: true })
  for (const z of zeros) if (!Object.hasOwn(out, z)) out[z] = 0
  return out
}

function expectCodecError(fn: () => unknown): void {
  let thrown: unknown
  try {
    fn()
  } catch (err) {
    thrown = err
  }
  expect(thrown).toBeInstanceOf(CodecError)
  expect((thrown as CodecError).code).toBe('INVALID_ENCODING')
}

/** Runs `fn`; returns 'ok' or 'codec-error'; rethrows anything that is not a CodecError. */
function decodeOutcome(fn: () => void): 'ok' | 'codec-error' {
  try {
    fn()
    return 'ok'
  } catch (err) {
    if (err instanceof CodecError && err.code === 'INVALID_ENCODING') return 'codec-error'
    throw err
  }
}

describe('version vector algebra', () => {
  it('merge is commutative, associative and idempotent', () => {
    fc.assert(
      fc.property(rawVectorArb, rawVectorArb, rawVectorArb, (a, b, c) => {
        expect(merge(a, b)).toEqual(merge(b, a))
        expect(merge(merge(a, b), c)).toEqual(merge(a, merge(b, c)))
        expect(merge(a, a)).toEqual(canonical(a))
        expect(merge(merge(a, b), b)).toEqual(merge(a, b))
        expect(merge(a, emptyVector())).toEqual(canonical(a))
        expect(encodeVersionVector(merge(a, b))).toEqual(encodeVersionVector(merge(b, a)))
      }),
      { seed: SEED, numRuns: RUNS },
    )
  })

  it('merge is the pointwise maximum, dominates both inputs and is their least upper bound', () => {
    fc.assert(
      fc.property(rawVectorArb, rawVectorArb, rawVectorArb, (a, b, c) => {
        const m = merge(a, b)
        expect(m).toEqual(modelMerge(a, b))
        expect(Object.isFrozen(m)).toBe(true)
        expect(dominates(m, a)).toBe(true)
        expect(dominates(m, b)).toBe(true)
        if (dominates(c, a) && dominates(c, b)) expect(dominates(c, m)).toBe(true)
        const upper = merge(m, c)
        expect(dominates(upper, m)).toBe(true)
      }),
      { seed: SEED, numRuns: RUNS },
    )
  })

  it('merge never lets an inherited Object.prototype name shadow a counter', () => {
    for (const name of ['constructor', 'hasownproperty']) {
      expect(merge({}, { [name]: 5 })).toEqual({ [name]: 5 })
      expect(merge({ [name]: 2 }, { [name]: 7 })).toEqual({ [name]: 7 })
      expect(merge({ [name]: 9 }, {})).toEqual({ [name]: 9 })
    }
  })

  it('compare matches the pointwise model and is consistent with dominates', () => {
    const seen = new Set<VersionOrder>()
    fc.assert(
      fc.property(rawVectorArb, rawVectorArb, (a, b) => {
        const order = compare(a, b)
        seen.add(order)
        expect(order).toBe(modelCompare(a, b))
        const ab = dominates(a, b)
        const ba = dominates(b, a)
        expect(order === 'equal').toBe(ab && ba)
        expect(order === 'after').toBe(ab && !ba)
        expect(order === 'before').toBe(!ab && ba)
        expect(order === 'concurrent').toBe(!ab && !ba)
        const reverse = compare(b, a)
        expect(order === 'before').toBe(reverse === 'after')
        expect(order === 'after').toBe(reverse === 'before')
        expect(order === 'equal').toBe(reverse === 'equal')
        expect(order === 'concurrent').toBe(reverse === 'concurrent')
        expect(compare(a, a)).toBe('equal')
        expect(compare(canonical(a), a)).toBe('equal')
      }),
      { seed: SEED, numRuns: RUNS },
    )
    // The generator must exercise every outcome.
    expect([...seen].sort()).toEqual(['after', 'before', 'concurrent', 'equal'])
  })

  it('increment makes a strictly later vector that differs in one counter only', () => {
    fc.assert(
      fc.property(
        vectorArb.filter((v) => Object.values(v).every((c) => c < Number.MAX_SAFE_INTEGER)),
        nodeIdArb,
        (a, node) => {
          const next = increment(a, node)
          expect(compare(next, a)).toBe('after')
          expect(compare(a, next)).toBe('before')
          expect(counterOf(next, node)).toBe(counterOf(a, node) + 1)
          expect(includesDot(next, node, counterOf(a, node) + 1)).toBe(true)
          expect(includesDot(a, node, counterOf(a, node) + 1)).toBe(false)
          if (Number.isSafeInteger(totalCount(a) + 1)) expect(totalCount(next)).toBe(totalCount(a) + 1)
          for (const k of Object.keys(a)) if (k !== node) expect(counterOf(next, k)).toBe(counterOf(a, k))
          expect(Object.isFrozen(next)).toBe(true)
        },
      ),
      { seed: SEED, numRuns: RUNS },
    )
  })

  it('withCounter only ever raises a counter', () => {
    fc.assert(
      fc.property(vectorArb, nodeIdArb, counterArb, (a, node, counter) => {
        const next = withCounter(a, node, counter)
        expect(counterOf(next, node)).toBe(Math.max(counter, counterOf(a, node)))
        expect(dominates(next, a)).toBe(true)
        expect(next).toEqual(merge(a, { [node]: counter }))
      }),
      { seed: SEED, numRuns: RUNS },
    )
  })

  it('counterOf ignores inherited properties', () => {
    expect(counterOf({}, 'constructor')).toBe(0)
    expect(counterOf(emptyVector(), 'hasownproperty')).toBe(0)
    expect(dominates({}, { constructor: 1 })).toBe(false)
    expect(compare({ constructor: 1 }, {})).toBe('after')
  })
})

describe('version vector encoding', () => {
  it('round trips through encode/decode to the canonical vector', () => {
    fc.assert(
      fc.property(rawVectorArb, (raw) => {
        const bytes = encodeVersionVector(raw)
        const back = decodeVersionVector(bytes)
        expect(back).toEqual(canonical(raw))
        expect(Object.values(back).every((c) => c > 0)).toBe(true)
        expect(encodeVersionVector(back)).toEqual(bytes)
      }),
      { seed: SEED, numRuns: RUNS },
    )
  })

  it('encoding is canonical: equal vectors give identical bytes whatever the key order', () => {
    fc.assert(
      fc.property(rawVectorArb, fc.integer(), fc.uniqueArray(nodeIdArb, { maxLength: 3 }), (raw, seed, zeros) => {
        const other = reordered(raw, seed, zeros)
        expect(compare(raw, other)).toBe('equal')
        expect(encodeVersionVector(other)).toEqual(encodeVersionVector(raw))
        expect(canonical(other)).toEqual(canonical(raw))
      }),
      { seed: SEED, numRuns: RUNS },
    )
  })

  it('vectors that compare equal encode identically, and only those', () => {
    fc.assert(
      fc.property(rawVectorArb, rawVectorArb, (a, b) => {
        const same = Buffer.from(encodeVersionVector(a)).equals(Buffer.from(encodeVersionVector(b)))
        expect(same).toBe(compare(a, b) === 'equal')
      }),
      { seed: SEED, numRuns: RUNS },
    )
  })

  it('decoding random bytes returns a canonical vector or throws CodecError, nothing else', () => {
    const outcomes = { ok: 0, 'codec-error': 0 }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        let vv: VersionVector | undefined
        outcomes[decodeOutcome(() => (vv = decodeVersionVector(bytes)))]++
        if (vv !== undefined) {
          expect(Object.keys(vv).every(isValidNodeId)).toBe(true)
          expect(Object.values(vv).every((c) => Number.isSafeInteger(c) && c > 0)).toBe(true)
          expect(decodeVersionVector(encodeVersionVector(vv))).toEqual(vv)
        }
      }),
      { seed: SEED, numRuns: 3000 },
    )
    expect(outcomes.ok + outcomes['codec-error']).toBe(3000)
    expect(outcomes['codec-error']).toBeGreaterThan(0)
    expect(outcomes.ok).toBeGreaterThan(0) // [0] is the empty vector, for one
  })

  it('decoding mutated encodings returns a canonical vector or throws CodecError, nothing else', () => {
    const outcomes = { ok: 0, 'codec-error': 0 }
    fc.assert(
      fc.property(vectorArb, fc.array(mutationArb, { minLength: 1, maxLength: 3 }), (vv, mutations) => {
        let bytes = encodeVersionVector(vv)
        for (const m of mutations) bytes = mutate(bytes, m)
        let out: VersionVector | undefined
        outcomes[decodeOutcome(() => (out = decodeVersionVector(bytes)))]++
        if (out !== undefined) expect(decodeVersionVector(encodeVersionVector(out))).toEqual(out)
      }),
      { seed: SEED, numRuns: 3000 },
    )
    expect(outcomes['codec-error']).toBeGreaterThan(0)
    expect(outcomes.ok).toBeGreaterThan(0)
  })

  it('rejects non-canonical encodings with CodecError', () => {
    const enc = (entries: [string, number][]): Uint8Array => {
      const parts: number[] = [entries.length]
      for (const [k, c] of entries) parts.push(k.length, ...Buffer.from(k), c)
      return Uint8Array.from(parts)
    }
    expect(decodeVersionVector(enc([['a', 1], ['b', 2]]))).toEqual({ a: 1, b: 2 })
    expectCodecError(() => decodeVersionVector(enc([['b', 1], ['a', 2]]))) // unsorted
    expectCodecError(() => decodeVersionVector(enc([['a', 1], ['a', 2]]))) // duplicate
    expectCodecError(() => decodeVersionVector(enc([['a', 0]]))) // zero counter
    expectCodecError(() => decodeVersionVector(enc([['A', 1]]))) // invalid node id
    expectCodecError(() => decodeVersionVector(enc([['', 1]]))) // empty node id
    expectCodecError(() => decodeVersionVector(new Uint8Array([]))) // truncated
    expectCodecError(() => decodeVersionVector(new Uint8Array([0, 0]))) // trailing bytes
    expectCodecError(() => decodeVersionVector(new Uint8Array([1, 1]))) // truncated node id
    expectCodecError(() => decodeVersionVector(Uint8Array.from([0x81, 0x80, 0x01]))) // too many entries
    expect(MAX_VECTOR_ENTRIES).toBeLessThan(16385)
    // Counter above MAX_SAFE_INTEGER: 2^53 as a varuint.
    const big = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]
    expectCodecError(() => decodeVersionVector(Uint8Array.from([1, 1, 0x61, ...big])))
  })
})

describe('parseVersionVector', () => {
  const isModelValid = (value: unknown): boolean =>
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    Object.entries(value).every(([k, c]) => isValidNodeId(k) && typeof c === 'number' && Number.isSafeInteger(c) && c >= 0)

  it('accepts valid vectors and returns them canonical', () => {
    fc.assert(
      fc.property(rawVectorArb, fc.integer(), (raw, seed) => {
        const parsed = parseVersionVector(reordered(raw, seed, []))
        expect(parsed).toEqual(canonical(raw))
        expect(Object.isFrozen(parsed)).toBe(true)
        expect(parseVersionVector(JSON.parse(JSON.stringify(raw)))).toEqual(canonical(raw))
      }),
      { seed: SEED, numRuns: RUNS },
    )
  })

  it('accepts exactly what the model accepts; everything else throws CodecError', () => {
    const badKey = fc.oneof(
      fc.string(),
      fc.constantFrom('A', '', 'a-b', 'x'.repeat(65), '__proto__', 'é', ' a'),
    )
    const badCounter = fc.oneof(
      fc.constantFrom(-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, Number.MAX_SAFE_INTEGER + 1, -0.5, '1', null, true, [], {}),
      fc.double(),
      fc.anything(),
    )
    const candidate = fc.oneof(
      fc.anything(),
      fc.dictionary(fc.oneof(nodeIdArb, badKey), fc.oneof(counterArb, badCounter), { maxKeys: 4 }),
      fc.constantFrom(null, undefined, 0, 'a', [], [1], new Map([['a', 1]])),
    )
    let accepted = 0
    let rejected = 0
    fc.assert(
      fc.property(candidate, (value) => {
        let result: VersionVector | undefined
        const outcome = decodeOutcome(() => (result = parseVersionVector(value)))
        expect(outcome === 'ok').toBe(isModelValid(value))
        if (result !== undefined) {
          accepted++
          expect(result).toEqual(canonical(Object.fromEntries(Object.entries(value as object)) as Record<string, number>))
        } else {
          rejected++
        }
      }),
      { seed: SEED, numRuns: 2000 },
    )
    expect(accepted).toBeGreaterThan(50)
    expect(rejected).toBeGreaterThan(50)
  })
})
