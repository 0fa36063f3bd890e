import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  CHANGE_FORMAT_VERSION,
  CodecError,
  MAX_FIELD_NAME_BYTES,
  decodeChange,
  encodeChange,
  isValidEntityId,
  isValidNamespace,
  isValidNodeId,
  type ChangeRecord,
} from '../../../crdt/index.ts'
import { changeArb, codeUnitStringArb, entityIdArb, mutate, mutationArb } from './arbitraries.ts'

const SEED = 42

/** Decodes `bytes`; a CodecError counts as a rejection, any other throw fails the test. */
function tryDecode(bytes: Uint8Array): ChangeRecord | 'rejected' {
  try {
    return decodeChange(bytes)
  } catch (err) {
    if (err instanceof CodecError && err.code === 'INVALID_ENCODING') return 'rejected'
    throw new Error(`decodeChange threw something other than CodecError: ${String(err)}`, { cause: err })
  }
}

/** Everything a decoded record must satisfy, checked without the codec. */
function expectWellFormed(r: ChangeRecord): void {
  expect(isValidNodeId(r.origin)).toBe(true)
  expect(Number.isSafeInteger(r.seq) && r.seq >= 1).toBe(true)
  expect(isValidNamespace(r.ns)).toBe(true)
  expect(isValidEntityId(r.id)).toBe(true)
  expect(['upsert', 'delete']).toContain(r.op)
  for (const [node, counter] of Object.entries(r.context)) {
    expect(isValidNodeId(node)).toBe(true)
    expect(Number.isSafeInteger(counter) && counter > 0).toBe(true)
  }
  expect(r.fields).toEqual([...new Set(r.fields)].sort())
  expect(r.texts).toEqual([...new Set(r.texts)].sort())
  expect(r.texts.every(isValidNamespace)).toBe(true)
  expect(Number.isSafeInteger(r.time) && r.time >= 0).toBe(true)
  if (r.op === 'delete') expect(r.fields.length + r.texts.length + r.update.length).toBe(0)
}

/** A decoded record must survive re-encoding exactly. */
function expectStable(r: ChangeRecord): void {
  expectWellFormed(r)
  const again = encodeChange(r)
  expect(decodeChange(again)).toEqual(r)
  expect(encodeChange(decodeChange(again))).toEqual(again)
}

describe('change codec round trip', () => {
  it('decode(encode(change)) deep-equals every valid change', () => {
    fc.assert(
      fc.property(changeArb, (change) => {
        const bytes = encodeChange(change)
        expect(bytes[0]).toBe(CHANGE_FORMAT_VERSION)
        const back = decodeChange(bytes)
        expect(back).toEqual(change)
        expect(back.update).toBeInstanceOf(Uint8Array)
        expect(encodeChange(back)).toEqual(bytes)
      }),
      { seed: SEED, numRuns: 1000 },
    )
  })

  it('every id isValidEntityId accepts survives the codec unchanged', () => {
    // Arbitrary UTF-16 code units, lone surrogates included: validation and codec must agree.
    fc.assert(
      fc.property(changeArb, fc.oneof(codeUnitStringArb(8), entityIdArb), (change, id) => {
        fc.pre(isValidEntityId(id))
        expect(decodeChange(encodeChange({ ...change, id })).id).toBe(id)
      }),
      { seed: SEED, numRuns: 1000 },
    )
  })

  it('encoding never produces bytes the decoder rejects or reads back differently', () => {
    // Field names straddling the size limit and containing lone surrogates, and invalid names:
    // encodeChange must refuse what it cannot encode faithfully instead of writing poison.
    const fieldArb = fc.oneof(
      fc.string({ maxLength: 6 }),
      codeUnitStringArb(6),
      fc.integer({ min: MAX_FIELD_NAME_BYTES - 2, max: MAX_FIELD_NAME_BYTES + 2 }).map((n) => 'f'.repeat(n)),
      fc.integer({ min: 339, max: 343 }).map((n) => '\u20ac'.repeat(n)), // 3 UTF-8 bytes each
    )
    const candidateArb = fc.record({
      change: changeArb,
      fields: fc.array(fieldArb, { maxLength: 3 }),
      texts: fc.array(fc.oneof({ weight: 4, arbitrary: fc.constantFrom('ok', 'data') }, fc.constantFrom('Bad', '', 'a/b')), { maxLength: 2 }),
      origin: fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, fc.constantFrom('', 'A', 'x'.repeat(65), 'ok')),
      seq: fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, fc.constantFrom(0, -1, 1.5, Number.MAX_SAFE_INTEGER + 2)),
      time: fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, fc.constantFrom(Number.MAX_SAFE_INTEGER + 2, 1e300, Number.NaN)),
    })
    let refused = 0
    let accepted = 0
    fc.assert(
      fc.property(candidateArb, ({ change, fields, texts, origin, seq, time }) => {
        const sorted = (xs: string[]): string[] => [...new Set(xs)].sort()
        const candidate: ChangeRecord = {
          ...change,
          op: 'upsert',
          fields: sorted(fields),
          texts: sorted(texts),
          ...(origin === undefined ? {} : { origin }),
          ...(seq === undefined ? {} : { seq }),
          ...(time === undefined ? {} : { time }),
        }
        let bytes: Uint8Array
        try {
          bytes = encodeChange(candidate)
        } catch (err) {
          expect(err).toBeInstanceOf(CodecError)
          expect((err as CodecError).code).toBe('INVALID_ENCODING')
          refused++
          return
        }
        accepted++
        expect(decodeChange(bytes)).toEqual(candidate)
      }),
      { seed: SEED, numRuns: 1000 },
    )
    expect(refused).toBeGreaterThan(100)
    expect(accepted).toBeGreaterThan(50)
  })

  it('encodeChange refuses a delete that carries fields, texts or an update', () => {
    const base: ChangeRecord = { origin: 'a', seq: 1, ns: 'n', id: 'x', op: 'delete', context: {}, fields: [], texts: [], update: new Uint8Array(), time: 0 }
    expect(decodeChange(encodeChange(base))).toEqual(base)
    for (const bad of [{ fields: ['f'] }, { texts: ['t'] }, { update: new Uint8Array([1]) }]) {
      expect(() => encodeChange({ ...base, ...bad })).toThrow(CodecError)
    }
  })
})

describe('change codec robustness', () => {
  it('decodes at least 10,000 random byte strings to a stable record or a CodecError', () => {
    const counts = { decoded: 0, rejected: 0 }
    const bytesArb = fc.oneof(
      fc.uint8Array({ maxLength: 128 }),
      // Same, but past the version byte, so the fuzzing reaches the body.
      fc.uint8Array({ maxLength: 128 }).map((b) => Uint8Array.from([CHANGE_FORMAT_VERSION, ...b])),
    )
    fc.assert(
      fc.property(bytesArb, (bytes) => {
        const r = tryDecode(bytes)
        if (r === 'rejected') {
          counts.rejected++
        } else {
          counts.decoded++
          expectStable(r)
        }
      }),
      { seed: SEED, numRuns: 10_000 },
    )
    expect(counts.decoded + counts.rejected).toBe(10_000)
    expect(counts.rejected).toBeGreaterThan(0)
  })

  it('decodes at least 10,000 mutated valid encodings to a stable record or a CodecError', () => {
    const counts = { decoded: 0, rejected: 0 }
    fc.assert(
      fc.property(changeArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (change, mutations) => {
        let bytes = encodeChange(change)
        for (const m of mutations) bytes = mutate(bytes, m)
        const r = tryDecode(bytes)
        if (r === 'rejected') {
          counts.rejected++
        } else {
          counts.decoded++
          expectStable(r)
        }
      }),
      { seed: SEED, numRuns: 10_000 },
    )
    expect(counts.decoded + counts.rejected).toBe(10_000)
    // Both outcomes must be common, or the mutations are not exercising the decoder.
    expect(counts.rejected).toBeGreaterThan(1000)
    expect(counts.decoded).toBeGreaterThan(500)
  })

  it('rejects non-bytes, other format versions and trailing bytes with CodecError', () => {
    const base: ChangeRecord = { origin: 'a', seq: 1, ns: 'n', id: 'x', op: 'upsert', context: { a: 1 }, fields: ['f'], texts: ['t'], update: new Uint8Array([0]), time: 5 }
    const bytes = encodeChange(base)
    expect(tryDecode(bytes)).toEqual(base)
    expect(tryDecode(Uint8Array.from([...bytes, 0]))).toBe('rejected')
    expect(tryDecode(Uint8Array.from([2, ...bytes.slice(1)]))).toBe('rejected')
    expect(tryDecode(new Uint8Array())).toBe('rejected')
    for (let cut = 0; cut < bytes.length; cut++) expect(tryDecode(bytes.slice(0, cut))).toBe('rejected')
    expect(() => decodeChange('not bytes' as unknown as Uint8Array)).toThrow(CodecError)
  })
})
