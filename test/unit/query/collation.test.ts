import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { compareJson, encodeDirected, encodeJson, encodeTuple, type Collatable } from '../../../daemon/query/collation.ts'

const json: fc.Arbitrary<Collatable> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.oneof(fc.integer({ min: -5, max: 5 }), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constantFrom(0, -0, 1e308, -1e-308, 5e-324)),
    fc.oneof(fc.string({ maxLength: 4 }), fc.string({ unit: 'binary', maxLength: 4 }), fc.constantFrom('', 'a', 'ab', 'b', '\u0001', '\uffff', '😀', 'é')),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(fc.constantFrom('a', 'b', 'ab', ''), tie('value'), { maxKeys: 3 }),
  ),
})).value as fc.Arbitrary<Collatable>
const maybe = fc.oneof(fc.constant(undefined), json)
const sign = (n: number): number => (n < 0 ? -1 : n > 0 ? 1 : 0)
const cmpStr = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)
const utf8Cmp = (a: string, b: string): number => sign(Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')))

describe('collation encoding (docs/queries.md, Collation)', () => {
  it('documents the type order', () => {
    const ordered: Collatable[] = [undefined, null, false, true, -1, 0, 2, '', 'a', 'b', [], [null], [1, 2], {}, { a: 1 }, { b: 0 }]
    for (let i = 1; i < ordered.length; i++) expect(compareJson(ordered[i - 1], ordered[i])).toBeLessThan(0)
  })

  it('string order and UTF-8 byte order of the encodings agree with the comparator (seeded)', () => {
    fc.assert(
      fc.property(maybe, maybe, (a, b) => {
        const c = sign(compareJson(a, b))
        expect(sign(cmpStr(encodeJson(a), encodeJson(b)))).toBe(c)
        expect(utf8Cmp(encodeJson(a), encodeJson(b))).toBe(c)
        expect(sign(cmpStr(encodeDirected(a, 'desc'), encodeDirected(b, 'desc')))).toBe(-c || 0)
        expect(encodeJson(a) === encodeJson(b)).toBe(c === 0)
      }),
      { seed: 2606, numRuns: 3000 },
    )
  })

  it('tuples of mixed directions order as the comparator, field by field (seeded)', () => {
    const dirs = fc.array(fc.constantFrom('asc' as const, 'desc' as const), { minLength: 2, maxLength: 2 })
    fc.assert(
      fc.property(fc.tuple(maybe, maybe), fc.tuple(maybe, maybe), dirs, (a, b, d) => {
        let expected = 0
        for (let i = 0; i < 2 && expected === 0; i++) expected = sign(compareJson(a[i], b[i])) * (d[i] === 'desc' ? -1 : 1) || 0
        expect(sign(cmpStr(encodeTuple(a, d), encodeTuple(b, d)))).toBe(expected)
      }),
      { seed: 2607, numRuns: 3000 },
    )
  })
})
